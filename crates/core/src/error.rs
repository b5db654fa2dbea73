//! The error type of the use cases: what the caller did wrong, what the back office answered,
//! and what went wrong on our side. Each variant has a stable `code` and a sentence for the
//! client; causes stay in the `#[source]` chain, for the logs only. Transport refusals (route,
//! method, media type, credentials) belong to the api function, which also maps every error
//! to an HTTP status in one `match`.

use crate::error_body::{ErrorBody, ErrorDetail};
use crate::ports::StoreError;
use crate::strict_json::StrictJsonError;
use crate::upstream::{BackendError, RejectionKind};
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the request body is not valid JSON")]
    MalformedJson(#[source] StrictJsonError),
    #[error("an object in the request body has the same key twice")]
    DuplicateJsonKey,
    #[error("the CSV is malformed at line {line}")]
    MalformedCsv { line: u64 },
    #[error("the CSV is not UTF-8 at line {line}")]
    InvalidCsvEncoding { line: u64 },
    #[error("line {line} is longer than {max_bytes} bytes")]
    LineTooLong { line: u64, max_bytes: usize },
    #[error("the CSV header is not valid")]
    InvalidCsvHeader(Vec<ErrorDetail>),
    #[error("the request body must be {0}")]
    InvalidBody(&'static str),
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
    #[error("the task is not finished yet; retry its failed items once it is")]
    TaskNotFinal,
    #[error("the task's failed items were already retried; see its retried_by")]
    TaskAlreadyRetried,
    #[error("no failed item of the task qualifies for a retry")]
    NothingToRetry,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInProgress,
    /// The back office's answer to a synchronous call: a rejection or upstream trouble.
    #[error("the back office refused or failed the call")]
    Backend(#[from] BackendError),
    #[error("webhook endpoint not found")]
    WebhookEndpointNotFound,
    #[error("a caller may register at most {max} webhook endpoints")]
    TooManyWebhookEndpoints { max: usize },
    #[error("webhook delivery not found")]
    WebhookDeliveryNotFound,
    #[error("the delivery is still being attempted; retry it once it has succeeded or failed")]
    WebhookDeliveryInProgress,
    #[error("no file was uploaded for this task yet; PUT it to the upload URL first")]
    UploadNotReceived,
    #[error("the uploaded file does not match the upload request: {0}")]
    UploadMismatch(&'static str),
    #[error("the task is not awaiting its upload")]
    TaskNotAwaitingUpload,
    #[error("the work queue is unavailable")]
    QueueUnavailable,
    #[error("a store call failed")]
    Store(#[from] StoreError),
}

impl From<crate::paging::InvalidPageToken> for AppError {
    fn from(_: crate::paging::InvalidPageToken) -> Self {
        Self::InvalidPageToken
    }
}

impl From<StrictJsonError> for AppError {
    fn from(e: StrictJsonError) -> Self {
        match e {
            StrictJsonError::DuplicateKey => Self::DuplicateJsonKey,
            malformed => Self::MalformedJson(malformed),
        }
    }
}

impl From<crate::tolerance::InvalidTolerance> for AppError {
    fn from(e: crate::tolerance::InvalidTolerance) -> Self {
        Self::InvalidQuery(e.0)
    }
}

impl AppError {
    /// The stable, documented code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::DuplicateJsonKey => "duplicate_json_key",
            Self::MalformedCsv { .. } => "malformed_csv",
            Self::InvalidCsvEncoding { .. } => "invalid_encoding",
            Self::LineTooLong { .. } => "line_too_long",
            Self::InvalidCsvHeader(_) => "invalid_csv_header",
            Self::InvalidBody(_) => "invalid_body",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::TooManyItems { .. } => "too_many_items",
            Self::EmptyBatch => "empty_batch",
            Self::ValidationFailed(_) => "validation_failed",
            Self::InvalidQuery(_) => "invalid_query_parameter",
            Self::InvalidPageToken => "invalid_page_token",
            Self::UnknownTaskType => "unknown_task_type",
            Self::TaskNotFound => "task_not_found",
            Self::TaskAlreadyFinal => "task_already_final",
            Self::TaskNotFinal => "task_not_final",
            Self::TaskAlreadyRetried => "task_already_retried",
            Self::NothingToRetry => "nothing_to_retry",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyInProgress => "idempotency_request_in_progress",
            Self::Backend(BackendError::Rejected(r)) => match r.kind {
                RejectionKind::Duplicate => "duplicate_beneficiary",
                RejectionKind::Invalid => "rejected",
            },
            Self::Backend(BackendError::Unavailable(_)) => "upstream_unavailable",
            Self::Backend(BackendError::Timeout) => "upstream_timeout",
            Self::Backend(BackendError::BadResponse(_)) => "upstream_error",
            Self::WebhookEndpointNotFound => "webhook_endpoint_not_found",
            Self::TooManyWebhookEndpoints { .. } => "too_many_webhook_endpoints",
            Self::WebhookDeliveryNotFound => "webhook_delivery_not_found",
            Self::WebhookDeliveryInProgress => "webhook_delivery_in_progress",
            Self::UploadNotReceived => "upload_not_received",
            Self::UploadMismatch(_) => "upload_mismatch",
            Self::TaskNotAwaitingUpload => "task_not_awaiting_upload",
            Self::QueueUnavailable => "queue_unavailable",
            Self::Store(_) => "internal_error",
        }
    }

    /// The body a client sees: a clear sentence, never an internal cause.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::MalformedJson(_) => {
                ErrorBody::new(self.code(), "The request body is not valid JSON.", vec![])
            }
            Self::InvalidCsvHeader(details) => ErrorBody::new(
                self.code(),
                "The CSV header must name each field once, known fields only, and every required one.",
                details.clone(),
            ),
            Self::ValidationFailed(details) => ErrorBody::new(
                self.code(),
                format!("{} problem(s) found; nothing was created.", details.len()),
                details.clone(),
            ),
            Self::Backend(e @ BackendError::Rejected(_)) => {
                ErrorBody::new(self.code(), e.message(), vec![e.item_error()])
            }
            Self::Backend(e) => ErrorBody::new(self.code(), e.message(), vec![]),
            Self::Store(_) => {
                ErrorBody::new(self.code(), "Something went wrong on our side.", vec![])
            }
            other => ErrorBody::new(self.code(), sentence(&other.to_string()), vec![]),
        }
    }
}

/// `"task not found"` → `"Task not found."`
pub fn sentence(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    out.push('.');
    out
}

/// An error and its causes, `outer: cause: root`, for a log field. Responses never carry it.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamCause;

    #[test]
    fn store_errors_never_leak_their_cause_but_the_chain_keeps_it() {
        let error = AppError::from(StoreError::permanent("dynamodb: table bgt-x not found"));
        let body = error.body();
        assert_eq!(body.error.code, "internal_error");
        assert!(!body.error.message.contains("dynamodb"));
        assert_eq!(
            Chain(&error).to_string(),
            "a store call failed: store call failed: dynamodb: table bgt-x not found"
        );
    }

    #[test]
    fn upstream_trouble_keeps_the_sync_codes_and_sentences() {
        let body = AppError::from(BackendError::Timeout).body();
        assert_eq!(
            (body.error.code.as_str(), body.error.message.as_str()),
            (
                "upstream_timeout",
                "The back office did not answer in time."
            )
        );
        let error = AppError::from(BackendError::Unavailable(UpstreamCause::new(
            std::io::Error::other("connection refused by 10.0.0.7"),
        )));
        assert!(!error.body().error.message.contains("10.0.0.7"));
        // The client sees a sentence; the log's cause chain keeps what lay beneath.
        assert!(Chain(&error)
            .to_string()
            .ends_with("back office unavailable: connection refused by 10.0.0.7"));
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
