//! The registry of task types. A task type says what one item's work is; everything else
//! (validation of the batch, chunking, the queue, retries, outcomes, finishing, the HTTP
//! routes) is shared. Adding a type is one module implementing [`TaskKind`] and one line in
//! [`REGISTRY`].

mod beneficiaries_import;
mod beneficiaries_validation;

use crate::beneficiary::Beneficiary;
use crate::error::AppError;
use crate::ports::BeneficiaryBackend;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::time::Instant;

#[async_trait]
pub trait TaskKind: Send + Sync + 'static {
    /// The path segment and `task_type` value, e.g. `beneficiaries-import`.
    fn slug(&self) -> &'static str;

    /// Does one item's work upstream. `Ok` holds the item's result fields (merged into its
    /// outcome, e.g. `{"beneficiary": …}`); `Err` is either a permanent rejection, recorded as
    /// the item's error, or a transient failure, retried.
    async fn run_item(
        &self,
        backend: &dyn BeneficiaryBackend,
        item: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<Map<String, Value>, AppError>;
}

/// Every task type the API offers.
pub static REGISTRY: &[&dyn TaskKind] = &[
    &beneficiaries_import::BeneficiariesImport,
    &beneficiaries_validation::BeneficiariesValidation,
];

pub fn find(slug: &str) -> Option<&'static dyn TaskKind> {
    REGISTRY.iter().copied().find(|k| k.slug() == slug)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn slugs_are_unique_and_url_safe() {
        let slugs: HashSet<&str> = REGISTRY.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), REGISTRY.len());
        for s in slugs {
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s}"
            );
        }
    }
}
