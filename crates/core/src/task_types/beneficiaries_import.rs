//! `beneficiaries-import`: creates each beneficiary through the same back-office call as
//! `POST /beneficiaries`; an item's result is the created beneficiary.

use crate::beneficiary::Beneficiary;
use crate::ports::BeneficiaryBackend;
use crate::upstream::{BackendError, UpstreamCause};
use serde_json::{Map, Value};
use std::time::Instant;

pub(super) async fn run_item(
    backend: &dyn BeneficiaryBackend,
    item: &Beneficiary,
    idempotency_key: &str,
    deadline: Instant,
) -> Result<Map<String, Value>, BackendError> {
    let created = backend.create(item, idempotency_key, deadline).await?;
    // A struct of strings always serialises; were it ever not to, the item stays pending (the
    // creation is replayed by its idempotency key) rather than being called failed.
    let value = serde_json::to_value(created)
        .map_err(|e| BackendError::BadResponse(UpstreamCause::new(e)))?;
    Ok(Map::from_iter([("beneficiary".to_owned(), value)]))
}
