//! Creating one beneficiary: the synchronous endpoint's operation. The import task type makes
//! the same back-office call per item (`task_types`), so both paths share validation, the
//! upstream client and the error codes (`upstream::BackendError`).

use crate::beneficiary::{Beneficiary, CreatedBeneficiary};
use crate::error::AppError;
use crate::ports::BeneficiaryBackend;
use std::time::Instant;

/// Parses and validates a single-create body.
pub fn parse_body(body: &[u8], max_body_bytes: usize) -> Result<Beneficiary, AppError> {
    if body.len() > max_body_bytes {
        return Err(AppError::BodyTooLarge {
            max_bytes: max_body_bytes,
        });
    }
    let value = crate::strict_json::parse(body)?;
    Beneficiary::parse(&value).map_err(AppError::ValidationFailed)
}

/// Creates one beneficiary upstream. Its span (no fields of its own) is at debug level: a
/// task's items run it ten thousand times, inside their chunk's span, which says which task.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_one(
    backend: &dyn BeneficiaryBackend,
    beneficiary: &Beneficiary,
    idempotency_key: &str,
    deadline: Instant,
) -> Result<CreatedBeneficiary, AppError> {
    Ok(backend
        .create(beneficiary, idempotency_key, deadline)
        .await?)
}
