//! The one place where errors become HTTP statuses.

use http::StatusCode;
use tasks_core::error::AppError;

pub fn status(error: &AppError) -> StatusCode {
    use AppError::*;
    match error {
        Unauthenticated => StatusCode::UNAUTHORIZED,
        MalformedJson(_) | DuplicateJsonKey | InvalidBody(_) | InvalidQuery(_)
        | InvalidPageToken => StatusCode::BAD_REQUEST,
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyTooLarge { .. } | TooManyItems { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        EmptyBatch | ValidationFailed(_) | Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        UnknownTaskType | TaskNotFound | RouteNotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Duplicate(_) | TaskAlreadyFinal | IdempotencyInProgress => StatusCode::CONFLICT,
        InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
        IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,

        UpstreamBadResponse => StatusCode::BAD_GATEWAY,
        UpstreamUnavailable | QueueUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
