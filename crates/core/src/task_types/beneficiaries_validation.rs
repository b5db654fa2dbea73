//! `beneficiaries-validation`: checks each beneficiary against the back office without
//! creating anything. An accepted item's result is the verdict `{"valid": true}`; a rejected
//! one is an item error, exactly as an import would have recorded it.

use super::TaskKind;
use crate::beneficiary::Beneficiary;
use crate::error::AppError;
use crate::ports::BeneficiaryBackend;
use crate::usecases::create_beneficiary::backend_error;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::time::Instant;

pub struct BeneficiariesValidation;

#[async_trait]
impl TaskKind for BeneficiariesValidation {
    fn slug(&self) -> &'static str {
        "beneficiaries-validation"
    }

    async fn run_item(
        &self,
        backend: &dyn BeneficiaryBackend,
        item: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<Map<String, Value>, AppError> {
        backend
            .validate(item, idempotency_key, deadline)
            .await
            .map_err(backend_error)?;
        Ok(Map::from_iter([(
            "verdict".to_owned(),
            json!({"valid": true}),
        )]))
    }
}
