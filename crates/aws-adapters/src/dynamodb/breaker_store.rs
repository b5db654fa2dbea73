//! [`BreakerStore`] on the task table: the breaker in front of BOS is one item,
//! `pk = BREAKER#bos`, `sk = BREAKER`, written only by compare-and-set on its `version`. Its
//! sort key keeps it out of the stream consumers' filters (they take `sk = TASK`).

use super::codec::{corrupt, n, s, Item};
use super::task_store::DynamoTaskStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use tasks_core::breaker::BreakerRecord;
use tasks_core::ports::{BreakerStore, StoreError};

const BREAKER_PK: &str = "BREAKER#bos";

pub(super) fn breaker_key() -> Item {
    HashMap::from([
        ("pk".to_owned(), s(BREAKER_PK)),
        ("sk".to_owned(), s("BREAKER")),
    ])
}

/// Whether `item` is the breaker's record (as read in a chunk's `BatchGetItem`).
pub(super) fn is_breaker(item: &Item) -> bool {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(BREAKER_PK)
}

fn to_item(r: &BreakerRecord) -> Item {
    let mut item = breaker_key();
    item.insert("open".into(), AttributeValue::Bool(r.open));
    item.insert("retry_at_ms".into(), n(r.retry_at_ms));
    item.insert("probe_until_ms".into(), n(r.probe_until_ms));
    item.insert("opened_at_ms".into(), n(r.opened_at_ms));
    item.insert("opens".into(), n(r.opens));
    item.insert("version".into(), n(r.version));
    item
}

pub(super) fn from_item(item: &Item) -> Result<BreakerRecord, StoreError> {
    let num = |k: &'static str| -> Result<u64, StoreError> {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(k))
    };
    Ok(BreakerRecord {
        open: *item
            .get("open")
            .and_then(|v| v.as_bool().ok())
            .ok_or_else(|| corrupt("open"))?,
        retry_at_ms: num("retry_at_ms")?,
        probe_until_ms: num("probe_until_ms")?,
        opened_at_ms: num("opened_at_ms")?,
        opens: num("opens")?,
        version: num("version")?,
    })
}

#[async_trait]
impl BreakerStore for DynamoTaskStore {
    async fn read_breaker(&self) -> Result<BreakerRecord, StoreError> {
        match self.table.get(breaker_key()).await? {
            Some(item) => from_item(&item),
            None => Ok(BreakerRecord::default()),
        }
    }

    async fn write_breaker(&self, seen: u64, next: &BreakerRecord) -> Result<bool, StoreError> {
        let put = self.table.client.put_item().set_item(Some(to_item(next)));
        let put = if seen == 0 {
            put.condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
        } else {
            put.condition_expression("#version = :seen")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":seen", n(seen))
        };
        self.table.put_if(put).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn records_round_trip() {
        let r = BreakerRecord::default()
            .opened(1_000, Duration::from_secs(5))
            .unwrap()
            .probe_claimed(6_000)
            .unwrap();
        assert_eq!(from_item(&to_item(&r)).unwrap(), r);
    }
}
