//! What each task type does with one item. Everything else (validation of the batch,
//! chunking, the queue, retries, outcomes, finishing, the HTTP routes) is shared, so adding a
//! type is one [`TaskType`] variant and one module here; the `match` below will not compile
//! until the new type has its behaviour.

mod beneficiaries_import;
mod beneficiaries_validation;

use crate::beneficiary::Beneficiary;
use crate::ports::BeneficiaryBackend;
use crate::task::TaskType;
use crate::upstream::BackendError;
use serde_json::{Map, Value};
use std::time::Instant;

/// Does one item's work upstream. `Ok` holds the item's result fields (merged into its
/// outcome, e.g. `{"beneficiary": …}`); `Err` is the back office's answer, which says itself
/// whether it is final for the item ([`BackendError::is_permanent`]).
pub async fn run_item(
    task_type: TaskType,
    backend: &dyn BeneficiaryBackend,
    item: &Beneficiary,
    idempotency_key: &str,
    deadline: Instant,
) -> Result<Map<String, Value>, BackendError> {
    match task_type {
        TaskType::BeneficiariesImport => {
            beneficiaries_import::run_item(backend, item, idempotency_key, deadline).await
        }
        TaskType::BeneficiariesValidation => {
            beneficiaries_validation::run_item(backend, item, idempotency_key, deadline).await
        }
    }
}
