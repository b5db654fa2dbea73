//! Idempotency records in memory, with the DynamoDB store's claim, replay and expiry rules.

use super::{lock, IdempotencyEntry, MemoryStore};
use crate::ports::*;
use async_trait::async_trait;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_after: std::time::Duration,
        expires_at: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut records = lock(&self.idempotency);
        if let Some(e) = records.get_mut(scope).filter(|e| e.expires_at > now) {
            if e.fingerprint != fingerprint {
                return Ok(IdempotencyBegin::Mismatch);
            }
            if let Some(r) = &e.response {
                return Ok(IdempotencyBegin::Replay(r.clone()));
            }
            if e.locked_at + stale_after > now {
                return Ok(IdempotencyBegin::InProgress);
            }
            e.locked_at = now;
            return Ok(IdempotencyBegin::Proceed);
        }
        records.insert(
            scope.to_owned(),
            IdempotencyEntry {
                fingerprint: fingerprint.to_owned(),
                locked_at: now,
                expires_at,
                response: None,
            },
        );
        Ok(IdempotencyBegin::Proceed)
    }

    async fn complete(&self, scope: &str, response: &StoredResponse) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.idempotency).get_mut(scope) {
            e.response = Some(response.clone());
        }
        Ok(())
    }

    async fn abandon(&self, scope: &str) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        lock(&self.idempotency).remove(scope);
        Ok(())
    }
}
