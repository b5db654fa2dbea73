//! The api function's error: the transport refusals that only HTTP knows (credentials, route,
//! method, media type) beside the use cases' [`AppError`], and the one place where errors
//! become HTTP statuses.

use http::StatusCode;
use tasks_core::error::{sentence, AppError};
use tasks_core::error_body::ErrorBody;
use tasks_core::upstream::{BackendError, RejectionKind};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("content type must be application/json (or text/csv where a batch is posted)")]
    UnsupportedMediaType,
    #[error(transparent)]
    App(#[from] AppError),
}

impl ApiError {
    /// The stable, documented code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::App(e) => e.code(),
        }
    }

    /// The body a client sees: a clear sentence, never an internal cause.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::App(e) => e.body(),
            transport => ErrorBody::new(self.code(), sentence(&transport.to_string()), vec![]),
        }
    }

    pub fn status(&self) -> StatusCode {
        use AppError::*;
        let app = match self {
            Self::Unauthenticated => return StatusCode::UNAUTHORIZED,
            Self::RouteNotFound => return StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => return StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => return StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::App(e) => e,
        };
        match app {
            MalformedJson(_)
            | DuplicateJsonKey
            | MalformedCsv { .. }
            | InvalidCsvEncoding { .. }
            | LineTooLong { .. }
            | InvalidCsvHeader(_)
            | InvalidBody(_)
            | InvalidQuery(_)
            | InvalidPageToken
            | InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } | TooManyItems { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            EmptyBatch | ValidationFailed(_) | IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            UnknownTaskType | TaskNotFound | WebhookEndpointNotFound | WebhookDeliveryNotFound => {
                StatusCode::NOT_FOUND
            }
            WebhookDeliveryInProgress
            | UploadNotReceived
            | UploadMismatch(_)
            | TaskNotAwaitingUpload => StatusCode::CONFLICT,
            TooManyWebhookEndpoints { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            TaskAlreadyFinal | TaskNotFinal | TaskAlreadyRetried | IdempotencyInProgress => {
                StatusCode::CONFLICT
            }
            NothingToRetry => StatusCode::UNPROCESSABLE_ENTITY,
            Backend(BackendError::Rejected(r)) => match r.kind {
                RejectionKind::Duplicate => StatusCode::CONFLICT,
                RejectionKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            },
            Backend(BackendError::BadResponse(_)) => StatusCode::BAD_GATEWAY,
            Backend(BackendError::Unavailable(_)) | QueueUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Backend(BackendError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
