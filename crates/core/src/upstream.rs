//! What the back office can answer when asked to create or check a beneficiary, and what each
//! answer means for the item: the one place that decides whether trying again can help, and
//! which code and sentence an item error carries. The sync endpoint maps the same answers to
//! HTTP (`error::AppError::Backend`), so both paths speak alike.

use crate::error_body::ErrorDetail;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// How the back office answered, classified for retry decisions. Upstream trouble keeps what
/// lay beneath it (a transport error, a status, an answer we could not read) as its source, for
/// the log's cause chain; clients see only [`BackendError::code`] and [`BackendError::message`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// A business answer: retrying cannot change it.
    #[error("rejected: {}", .0.code)]
    Rejected(Rejection),
    /// 5xx, 429 or a connection failure, still failing when retries ran out.
    #[error("back office unavailable")]
    Unavailable(#[source] UpstreamCause),
    /// No answer within the request time-out, or no time left to ask.
    #[error("back office timed out")]
    Timeout,
    /// An answer we cannot interpret (a redirect, a body that is not the contract's, another
    /// beneficiary than the one sent): worth an alarm. A later delivery asks again.
    #[error("unexpected back-office answer")]
    BadResponse(#[source] UpstreamCause),
}

/// The error beneath an upstream failure, kept whole. Shared rather than owned, so that one
/// answer can be cloned into the outcome of every item it ends.
#[derive(Clone)]
pub struct UpstreamCause(Arc<dyn Error + Send + Sync>);

impl UpstreamCause {
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The cause's own error, for a test or an adapter that must tell causes apart.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for UpstreamCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for UpstreamCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for UpstreamCause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// An HTTP status that says the back office is in trouble (5xx, 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status {0}")]
pub struct UpstreamStatus(pub u16);

impl BackendError {
    /// The back office answered `status` (5xx or 429).
    pub fn unavailable_status(status: u16) -> Self {
        Self::Unavailable(UpstreamCause::new(UpstreamStatus(status)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    Duplicate,
    Invalid,
}

impl BackendError {
    /// Whether this answer is final for the item. Only a rejection is: an upstream that fails,
    /// times out or answers strangely may do better on the message's next delivery.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }

    /// The stable code clients see: BOS's own for a rejection, ours for upstream trouble.
    pub fn code(&self) -> &str {
        match self {
            Self::Rejected(r) => &r.code,
            Self::Unavailable(_) => "upstream_unavailable",
            Self::Timeout => "upstream_timeout",
            Self::BadResponse(_) => "upstream_error",
        }
    }

    /// The sentence clients see; never the cause, which may name hosts or statuses.
    pub fn message(&self) -> &str {
        match self {
            Self::Rejected(r) => &r.message,
            Self::Unavailable(_) => "The back office is unavailable.",
            Self::Timeout => "The back office did not answer in time.",
            Self::BadResponse(_) => "The back office answered unexpectedly.",
        }
    }

    /// The error recorded on an item this answer ended.
    pub fn item_error(&self) -> ErrorDetail {
        ErrorDetail {
            index: None,
            line: None,
            external_id: None,
            field: match self {
                Self::Rejected(r) => r.field.clone(),
                _ => None,
            },
            code: self.code().to_owned(),
            message: self.message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rejections_are_permanent_and_each_answer_has_its_code() {
        let rejected = BackendError::Rejected(Rejection {
            kind: RejectionKind::Duplicate,
            code: "duplicate_beneficiary".into(),
            message: "Already exists.".into(),
            field: Some("iban".into()),
        });
        let cases = [
            (rejected, true, "duplicate_beneficiary", Some("iban")),
            (
                BackendError::unavailable_status(503),
                false,
                "upstream_unavailable",
                None,
            ),
            (BackendError::Timeout, false, "upstream_timeout", None),
            (
                BackendError::BadResponse(UpstreamCause::new(UpstreamStatus(302))),
                false,
                "upstream_error",
                None,
            ),
        ];
        for (error, permanent, code, field) in cases {
            assert_eq!(error.is_permanent(), permanent, "{error}");
            let detail = error.item_error();
            assert_eq!(
                (detail.code.as_str(), detail.field.as_deref()),
                (code, field)
            );
            assert!(!detail.message.contains("503") && !detail.message.contains("302"));
        }
    }
}
