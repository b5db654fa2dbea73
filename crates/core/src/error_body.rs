//! The one error shape every answer uses, sync and async alike: `{"error": {code, message,
//! details}}`, and the per-item `ErrorDetail` that item outcomes and 422s share. Anything a
//! client sent is echoed back bounded.

use serde::{Deserialize, Serialize};

/// `{"error": {...}}`, the body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One problem with one field of one item. `index` and `external_id` locate the item in a
/// batch; they are absent for the single-create endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// For a CSV body: the line the item's row starts on (the header is line 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

impl ErrorDetail {
    /// A problem with one field. The field name is echoed at most [`ECHO_MAX_CHARS`]
    /// characters long: it may be a client's unknown key of any length.
    pub fn field(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            index: None,
            line: None,
            external_id: None,
            field: Some(bounded(&field.into())),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// Places the problem at an item; its `external_id` is echoed at most [`ECHO_MAX_CHARS`]
    /// characters long (a valid one never is longer).
    pub fn at(mut self, index: u32, external_id: Option<&str>) -> Self {
        self.index = Some(index);
        self.external_id = external_id.map(bounded);
        self
    }

    /// Names the CSV line of the item the problem is at.
    pub fn on_line(mut self, line: Option<u64>) -> Self {
        self.line = line;
        self
    }
}

/// The most characters of a client's string an error detail repeats back.
pub const ECHO_MAX_CHARS: usize = 64;

/// `text`, cut to [`ECHO_MAX_CHARS`] characters with `…` marking the cut.
pub(crate) fn bounded(text: &str) -> String {
    match text.char_indices().nth(ECHO_MAX_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>, details: Vec<ErrorDetail>) -> Self {
        Self {
            error: ErrorObject {
                code: code.to_owned(),
                message: message.into(),
                details,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_client_strings_are_bounded() {
        let long = "é".repeat(100_000);
        let d = ErrorDetail::field(long.clone(), "unknown_field", "m").at(3, Some(&long));
        assert_eq!(d.field.as_deref().map(|f| f.chars().count()), Some(65));
        assert_eq!(
            d.external_id.as_deref().map(|f| f.chars().count()),
            Some(65)
        );
        assert!(d.field.unwrap().ends_with('…'));
        let short = ErrorDetail::field("name", "c", "m").at(0, Some("crm-1"));
        assert_eq!(
            (short.field.as_deref(), short.external_id.as_deref()),
            (Some("name"), Some("crm-1"))
        );
    }
}
