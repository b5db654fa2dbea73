//! The one error shape every response uses, sync and async alike, and the error type of the
//! use cases. Each variant has a stable `code`; the HTTP status mapping lives in the api
//! function, in one `match`.

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
}

/// The most characters of a client's string an error detail repeats back.
pub const ECHO_MAX_CHARS: usize = 64;

/// `text`, cut to [`ECHO_MAX_CHARS`] characters with `…` marking the cut.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(ECHO_MAX_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// What a use case can fail with. Client mistakes first, then upstream trouble, then ours.
/// `Internal` carries the cause for the logs only; it never reaches a response body.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("an object in the request body has the same key twice")]
    DuplicateJsonKey,
    #[error("the request body must be {0}")]
    InvalidBody(&'static str),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body exceeds {max_bytes} bytes")]
    BodyTooLarge { max_bytes: usize },
    #[error("a task takes at most {max} items")]
    TooManyItems { max: usize },
    #[error("the list of items is empty")]
    EmptyBatch,
    #[error("validation failed")]
    ValidationFailed(Vec<ErrorDetail>),
    #[error("invalid query parameter {0}")]
    InvalidQuery(&'static str),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("unknown task type")]
    UnknownTaskType,
    #[error("task not found")]
    TaskNotFound,
    #[error("the task is already finished")]
    TaskAlreadyFinal,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInProgress,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("beneficiary already exists")]
    Duplicate(ErrorDetail),
    #[error("rejected by the back office")]
    Rejected(ErrorDetail),
    #[error("the back office is unavailable")]
    UpstreamUnavailable,
    #[error("the back office did not answer in time")]
    UpstreamTimeout,
    #[error("the back office answered unexpectedly")]
    UpstreamBadResponse,
    #[error("the work queue is unavailable")]
    QueueUnavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::strict_json::StrictJsonError> for AppError {
    fn from(e: crate::strict_json::StrictJsonError) -> Self {
        match e {
            crate::strict_json::StrictJsonError::DuplicateKey => Self::DuplicateJsonKey,
            malformed => Self::MalformedJson(malformed.to_string()),
        }
    }
}

impl AppError {
    /// The stable, documented code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::MalformedJson(_) => "malformed_json",
            Self::DuplicateJsonKey => "duplicate_json_key",
            Self::InvalidBody(_) => "invalid_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::TooManyItems { .. } => "too_many_items",
            Self::EmptyBatch => "empty_batch",
            Self::ValidationFailed(_) => "validation_failed",
            Self::InvalidQuery(_) => "invalid_query_parameter",
            Self::InvalidPageToken => "invalid_page_token",
            Self::UnknownTaskType => "unknown_task_type",
            Self::TaskNotFound => "task_not_found",
            Self::TaskAlreadyFinal => "task_already_final",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyInProgress => "idempotency_request_in_progress",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Duplicate(_) => "duplicate_beneficiary",
            Self::Rejected(_) => "rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamBadResponse => "upstream_error",
            Self::QueueUnavailable => "queue_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The body a client sees: a clear sentence, never an internal cause.
    pub fn body(&self) -> ErrorBody {
        let (message, details) = match self {
            Self::MalformedJson(_) => ("The request body is not valid JSON.".to_owned(), vec![]),
            Self::ValidationFailed(details) => (
                format!("{} problem(s) found; nothing was created.", details.len()),
                details.clone(),
            ),
            Self::Duplicate(d) | Self::Rejected(d) => (d.message.clone(), vec![d.clone()]),
            Self::Internal(_) => ("Something went wrong on our side.".to_owned(), vec![]),
            other => (sentence(&other.to_string()), vec![]),
        };
        ErrorBody {
            error: ErrorObject {
                code: self.code().to_owned(),
                message,
                details,
            },
        }
    }
}

fn sentence(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let body = AppError::Internal("dynamodb: table bgt-x not found".into()).body();
        assert_eq!(body.error.code, "internal_error");
        assert!(!body.error.message.contains("dynamodb"));
    }

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

    #[test]
    fn details_are_omitted_when_empty() {
        let json = serde_json::to_value(AppError::TaskNotFound.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "task_not_found", "message": "Task not found."}})
        );
    }
}
