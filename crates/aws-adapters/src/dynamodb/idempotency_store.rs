//! [`IdempotencyStore`] on the task table: one record per caller and key, claimed with a
//! conditional put, answered once, taken over when abandoned (keys and codecs in `codec`).

use super::codec::corrupt;
use super::codec::{idempotency_key, n, s};
use super::table::store_error;
use super::DynamoTaskStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::time::Duration;
use tasks_core::ports::{IdempotencyBegin, IdempotencyStore, StoreError, StoredResponse};
use time::OffsetDateTime;

#[async_trait]
impl IdempotencyStore for DynamoTaskStore {
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_after: Duration,
        expires_at: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut item = idempotency_key(scope);
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("locked_at_ms".into(), n(now_ms));
        item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
        let claimed = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(item))
            // An expired record is as good as none: TTL deletion is lazy.
            .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        match claimed {
            Ok(_) => return Ok(IdempotencyBegin::Proceed),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
            }
            Err(e) => return Err(store_error(e)),
        }
        // Someone holds the key: compare payloads on this path too, then replay or wait.
        let existing = self.table.get(idempotency_key(scope)).await?;
        let Some(existing) = existing.as_ref() else {
            // Released between our two calls; the client may simply retry.
            return Ok(IdempotencyBegin::InProgress);
        };
        let text = |k: &str| existing.get(k).and_then(|v| v.as_s().ok());
        if text("fingerprint").map(String::as_str) != Some(fingerprint) {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if let Some(body) = text("response") {
            let response: StoredResponse =
                serde_json::from_str(body).map_err(|_| corrupt("idempotency response"))?;
            return Ok(IdempotencyBegin::Replay(response));
        }
        let locked_at = existing
            .get("locked_at_ms")
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or_default();
        let stale = locked_at
            .parse::<i64>()
            .map_or(true, |t| t + stale_after.as_millis() as i64 <= now_ms);
        if !stale {
            return Ok(IdempotencyBegin::InProgress);
        }
        // Take over an abandoned claim, unless someone else just did.
        let takeover = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(idempotency_key(scope)))
            .update_expression("SET #locked = :now")
            .condition_expression("#locked = :old AND attribute_not_exists(#resp)")
            .expression_attribute_names("#locked", "locked_at_ms")
            .expression_attribute_names("#resp", "response")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":old", AttributeValue::N(locked_at))
            .send()
            .await;
        match takeover {
            Ok(_) => Ok(IdempotencyBegin::Proceed),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(IdempotencyBegin::InProgress)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn complete(&self, scope: &str, response: &StoredResponse) -> Result<(), StoreError> {
        let body = serde_json::to_string(response).map_err(StoreError::permanent)?;
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(idempotency_key(scope)))
            .update_expression("SET #resp = :r")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#resp", "response")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":r", s(body))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn abandon(&self, scope: &str) -> Result<(), StoreError> {
        self.table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(idempotency_key(scope)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
