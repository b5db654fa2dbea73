//! Creating one beneficiary: the synchronous endpoint's operation, reused item by item by
//! the consumer so both paths share validation, upstream client and error shapes.

use crate::beneficiary::{Beneficiary, CreatedBeneficiary};
use crate::error::{AppError, ErrorDetail};
use crate::ports::{BackendError, BeneficiaryBackend, RejectionKind};
use std::time::Instant;

/// Parses and validates a single-create body.
pub fn parse_body(body: &[u8], max_body_bytes: usize) -> Result<Beneficiary, AppError> {
    if body.len() > max_body_bytes {
        return Err(AppError::BodyTooLarge {
            max_bytes: max_body_bytes,
        });
    }
    let value = crate::strict_json::parse(body).map_err(AppError::from)?;
    Beneficiary::parse(&value).map_err(AppError::ValidationFailed)
}

/// Creates one beneficiary upstream and maps the answer to the API's errors.
#[tracing::instrument(skip_all)]
pub async fn create_one(
    backend: &dyn BeneficiaryBackend,
    beneficiary: &Beneficiary,
    idempotency_key: &str,
    deadline: Instant,
) -> Result<CreatedBeneficiary, AppError> {
    backend
        .create(beneficiary, idempotency_key, deadline)
        .await
        .map_err(backend_error)
}

/// The API error for a back-office answer: rejections keep BOS's code, message and field.
pub fn backend_error(e: BackendError) -> AppError {
    match e {
        BackendError::Rejected(r) => {
            let detail = ErrorDetail {
                index: None,
                external_id: None,
                field: r.field,
                code: r.code,
                message: r.message,
            };
            match r.kind {
                RejectionKind::Duplicate => AppError::Duplicate(detail),
                RejectionKind::Invalid => AppError::Rejected(detail),
            }
        }
        BackendError::Unavailable(_) => AppError::UpstreamUnavailable,
        BackendError::Timeout => AppError::UpstreamTimeout,
        BackendError::BadResponse(_) => AppError::UpstreamBadResponse,
    }
}

/// The item error recorded for a permanent rejection, or `None` when retrying may help.
pub fn permanent_item_error(error: &AppError) -> Option<ErrorDetail> {
    match error {
        AppError::Duplicate(d) | AppError::Rejected(d) => Some(d.clone()),
        _ => None,
    }
}
