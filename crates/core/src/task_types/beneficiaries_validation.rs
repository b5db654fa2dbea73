//! `beneficiaries-validation`: checks each beneficiary against the back office without
//! creating anything. An accepted item's result is the verdict `{"valid": true}`; a rejected
//! one is an item error, exactly as an import would have recorded it.

use crate::beneficiary::Beneficiary;
use crate::ports::BeneficiaryBackend;
use crate::upstream::BackendError;
use serde_json::{json, Map, Value};
use std::time::Instant;

pub(super) async fn run_item(
    backend: &dyn BeneficiaryBackend,
    item: &Beneficiary,
    idempotency_key: &str,
    deadline: Instant,
) -> Result<Map<String, Value>, BackendError> {
    backend.validate(item, idempotency_key, deadline).await?;
    Ok(Map::from_iter([(
        "verdict".to_owned(),
        json!({"valid": true}),
    )]))
}
