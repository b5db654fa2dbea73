//! `Idempotency-Key` on the POST endpoints. The same key, caller and request replays the first
//! answer (same status, same body, so the same `task_id`); the same key with another request is
//! refused (`idempotency_key_reused`); a second request while the first is still running is told
//! to wait (`idempotency_request_in_progress`). Answers of 5xx are not kept, so a request that
//! failed on our side can be retried with the same key.

use crate::error::AppError;
use crate::identity::Owner;
use crate::ports::{IdempotencyBegin, IdempotencyStore, StoredResponse};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;

/// An in-progress claim older than this is considered abandoned (the api function's timeout
/// is 29 s), so a crash cannot lock a key for its whole lifetime.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// A client-chosen key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
            .ok_or(AppError::InvalidIdempotencyKey)
    }

    /// The record key: binds caller and key, and reveals neither.
    pub fn scope(&self, owner: &Owner) -> String {
        hex(&Sha256::new()
            .chain_update(owner.as_str())
            .chain_update([0])
            .chain_update(&self.0)
            .finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What makes two requests "the same": method, path and the exact body bytes.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    hex(&Sha256::new()
        .chain_update(method)
        .chain_update(" ")
        .chain_update(path)
        .chain_update([0])
        .chain_update(body)
        .finalize())
}

/// `Ok(None)`: go ahead (then call [`finish`]); `Ok(Some(r))`: send `r` again.
pub async fn begin(
    store: &dyn IdempotencyStore,
    scope: &str,
    fingerprint: &str,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<Option<StoredResponse>, AppError> {
    match store
        .begin(scope, fingerprint, now, STALE_AFTER, now + ttl)
        .await?
    {
        IdempotencyBegin::Proceed => Ok(None),
        IdempotencyBegin::Replay(r) => Ok(Some(r)),
        IdempotencyBegin::InProgress => Err(AppError::IdempotencyInProgress),
        IdempotencyBegin::Mismatch => Err(AppError::IdempotencyKeyReused),
    }
}

/// Keeps the answer for replays, or releases the key when the answer was a server error.
pub async fn finish(store: &dyn IdempotencyStore, scope: &str, response: &StoredResponse) {
    let result = if response.status < 500 {
        store.complete(scope, response).await
    } else {
        store.abandon(scope).await
    };
    if let Err(e) = result {
        // The answer already went out; a later retry with this key may see "in progress"
        // until the claim goes stale. Worth a log line, not a failed request.
        tracing::error!(error = %e, "could not settle an idempotency record");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    fn resp(status: u16) -> StoredResponse {
        StoredResponse {
            status,
            headers: vec![("location".into(), "/x".into())],
            body: "{}".into(),
        }
    }

    #[test]
    fn keys() {
        assert!(IdempotencyKey::parse("order-42").is_ok());
        for bad in ["", "has space", "tab\t", &"x".repeat(256), "é"] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().code(),
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
        let k = IdempotencyKey::parse("k").unwrap();
        let (a, b) = (
            Owner::from_subject("a").unwrap(),
            Owner::from_subject("b").unwrap(),
        );
        assert_ne!(k.scope(&a), k.scope(&b), "keys are per caller");
    }

    #[tokio::test]
    async fn replay_mismatch_in_progress_and_release() {
        let store = MemoryStore::default();
        let now = OffsetDateTime::now_utc();
        let ttl = Duration::from_secs(86_400);
        let f1 = fingerprint("POST", "/tasks/x", b"[1]");
        let f2 = fingerprint("POST", "/tasks/x", b"[2]");

        assert_eq!(begin(&store, "s", &f1, now, ttl).await.unwrap(), None);
        assert_eq!(
            begin(&store, "s", &f1, now, ttl).await.unwrap_err().code(),
            "idempotency_request_in_progress"
        );
        assert_eq!(
            begin(&store, "s", &f2, now, ttl).await.unwrap_err().code(),
            "idempotency_key_reused"
        );
        finish(&store, "s", &resp(202)).await;
        assert_eq!(
            begin(&store, "s", &f1, now, ttl).await.unwrap(),
            Some(resp(202))
        );
        assert_eq!(
            begin(&store, "s", &f2, now, ttl).await.unwrap_err().code(),
            "idempotency_key_reused"
        );

        // A server error is not kept: the same request may run again.
        assert_eq!(begin(&store, "t", &f1, now, ttl).await.unwrap(), None);
        finish(&store, "t", &resp(503)).await;
        assert_eq!(begin(&store, "t", &f1, now, ttl).await.unwrap(), None);

        // An abandoned claim goes stale; an expired record is gone.
        let later = now + STALE_AFTER + Duration::from_secs(1);
        assert_eq!(begin(&store, "t", &f1, later, ttl).await.unwrap(), None);
        let much_later = now + ttl + Duration::from_secs(1);
        assert_eq!(
            begin(&store, "s", &f2, much_later, ttl).await.unwrap(),
            None
        );
    }
}
