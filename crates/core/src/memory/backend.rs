//! A back office in memory that honours idempotency keys and can reject IBANs or be down.

use super::lock;
use crate::beneficiary::Beneficiary;
use crate::beneficiary::CreatedBeneficiary;
use crate::breaker::{CallGate, Health};
use crate::ports::*;
use crate::upstream::BackendError;
use crate::upstream::Rejection;
use crate::upstream::RejectionKind;
use async_trait::async_trait;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

/// A back office that honours idempotency keys and can reject IBANs or be unavailable.
#[derive(Default)]
pub struct MemoryBackend {
    by_key: Mutex<HashMap<String, CreatedBeneficiary>>,
    rejected_ibans: Mutex<HashSet<String>>,
    flaky_ibans: Mutex<HashSet<String>>,
    unavailable: AtomicBool,
    creations: AtomicUsize,
    validations: AtomicUsize,
    calls: AtomicUsize,
    /// The trace id each call ran in (`None`: no trace), in call order.
    trace_ids: Mutex<Vec<Option<String>>>,
    /// Told of every answer, as the BOS client tells the breaker.
    gate: Mutex<Option<std::sync::Arc<dyn CallGate>>>,
}

impl MemoryBackend {
    pub fn creations(&self) -> usize {
        self.creations.load(Ordering::SeqCst)
    }
    /// Every call, whatever its answer.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn validations(&self) -> usize {
        self.validations.load(Ordering::SeqCst)
    }
    /// The trace id of every call so far, as the BOS client would have sent it.
    pub fn trace_ids(&self) -> Vec<Option<String>> {
        lock(&self.trace_ids).clone()
    }
    pub fn reject_iban(&self, iban: &str) {
        lock(&self.rejected_ibans).insert(iban.to_owned());
    }
    /// Calls for this IBAN fail transiently, others go through.
    pub fn fail_iban_transiently(&self, iban: &str) {
        lock(&self.flaky_ibans).insert(iban.to_owned());
    }
    pub fn set_unavailable(&self, v: bool) {
        self.unavailable.store(v, Ordering::SeqCst);
    }
    /// Tells `gate` what each call's answer says about BOS's health.
    pub fn set_gate(&self, gate: std::sync::Arc<dyn CallGate>) {
        *lock(&self.gate) = Some(gate);
    }
}

impl MemoryBackend {
    fn check(&self, b: &Beneficiary, key: &str) -> Result<(), BackendError> {
        let answer = self.answer(b);
        if let Some(gate) = lock(&self.gate).as_ref() {
            gate.observe(
                key,
                match &answer {
                    Err(e) if !e.is_permanent() => Health::Failing { retry_after: None },
                    _ => Health::Answered,
                },
            );
        }
        answer
    }

    fn answer(&self, b: &Beneficiary) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.trace_ids).push(crate::trace::current().map(|t| t.trace_id()));
        if self.unavailable.load(Ordering::SeqCst) || lock(&self.flaky_ibans).contains(b.iban()) {
            return Err(BackendError::unavailable_status(503));
        }
        if lock(&self.rejected_ibans).contains(b.iban()) {
            return Err(BackendError::Rejected(Rejection {
                kind: RejectionKind::Duplicate,
                code: "duplicate_beneficiary".into(),
                message: "A beneficiary with this IBAN already exists.".into(),
                field: Some("iban".into()),
            }));
        }
        Ok(())
    }
}

#[async_trait]
impl BeneficiaryBackend for MemoryBackend {
    async fn validate(
        &self,
        b: &Beneficiary,
        key: &str,
        _deadline: Instant,
    ) -> Result<(), BackendError> {
        self.check(b, key)?;
        self.validations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn create(
        &self,
        b: &Beneficiary,
        key: &str,
        _deadline: Instant,
    ) -> Result<CreatedBeneficiary, BackendError> {
        self.check(b, key)?;
        let mut by_key = lock(&self.by_key);
        if let Some(first) = by_key.get(key) {
            return Ok(first.clone());
        }
        let n = self.creations.fetch_add(1, Ordering::SeqCst);
        let created = CreatedBeneficiary {
            id: format!("ben_{n}"),
            name: b.name().to_owned(),
            country: b.country().to_owned(),
            currency: b.currency().to_owned(),
            iban: b.iban().to_owned(),
            bic: b.bic().map(str::to_owned),
            email: b.email().map(str::to_owned),
            external_id: b.external_id().map(str::to_owned),
            created_at: "2026-01-01T00:00:00Z".into(),
        };
        by_key.insert(key.to_owned(), created.clone());
        Ok(created)
    }
}
