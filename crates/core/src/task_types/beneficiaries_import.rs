//! `beneficiaries-import`: creates each beneficiary through the same code path as
//! `POST /beneficiaries`; an item's result is the created beneficiary.

use super::TaskKind;
use crate::beneficiary::Beneficiary;
use crate::error::AppError;
use crate::ports::BeneficiaryBackend;
use crate::usecases::create_beneficiary::create_one;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::time::Instant;

pub struct BeneficiariesImport;

#[async_trait]
impl TaskKind for BeneficiariesImport {
    fn slug(&self) -> &'static str {
        "beneficiaries-import"
    }

    async fn run_item(
        &self,
        backend: &dyn BeneficiaryBackend,
        item: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<Map<String, Value>, AppError> {
        let created = create_one(backend, item, idempotency_key, deadline).await?;
        let value = serde_json::to_value(created).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Map::from_iter([("beneficiary".to_owned(), value)]))
    }
}
