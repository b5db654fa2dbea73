//! [`DeliveryStore`] on the task table, beside the endpoint it belongs to:
//!
//! | item     | pk                   | sk                  | also |
//! |----------|----------------------|---------------------|------|
//! | delivery | `WHEP#{endpoint id}` | `DLV#{delivery id}` | `gsi1pk = WHEP#{endpoint id}#DELIVERIES`, `gsi1sk = {created_at ns}#{delivery id}` (log, newest first); `body` (the delivery as JSON), `status`, `attempt_count`, `expires_at` |
//!
//! `status` and `attempt_count` are the conditions of an update, so two senders of one
//! delivery cannot both record an attempt. Deliveries expire with the retention period.

use super::codec::corrupt;
use super::codec::{n, s, Item};
use super::DynamoTaskStore;
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;
use tasks_core::ports::{DeliveryStore, StoreError};
use tasks_core::webhook::EndpointId;
use tasks_core::webhook_delivery::{Delivery, DeliveryStatus};

/// How long deliveries are kept for the log.
const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

fn key(endpoint: EndpointId, id: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("WHEP#{endpoint}"))),
        ("sk".into(), s(format!("DLV#{id}"))),
    ])
}

fn log_key(endpoint: EndpointId) -> String {
    format!("WHEP#{endpoint}#DELIVERIES")
}

fn position(d: &Delivery) -> String {
    format!("{:020}#{}", d.created_at.unix_timestamp_nanos(), d.id)
}

fn to_item(d: &Delivery) -> Result<Item, StoreError> {
    let mut item = key(d.endpoint_id, &d.id);
    item.insert("gsi1pk".into(), s(log_key(d.endpoint_id)));
    item.insert("gsi1sk".into(), s(position(d)));
    let body = serde_json::to_string(d).map_err(StoreError::permanent)?;
    item.insert("body".into(), s(body));
    item.insert("status".into(), s(d.status.as_str()));
    item.insert("attempt_count".into(), n(d.attempts.len()));
    item.insert(
        "expires_at".into(),
        n((d.created_at + KEEP).unix_timestamp()),
    );
    Ok(item)
}

fn from_item(item: &Item) -> Result<Delivery, StoreError> {
    let body = item
        .get("body")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt("delivery body"))?;
    serde_json::from_str(body).map_err(|_| corrupt("delivery body"))
}

#[async_trait]
impl DeliveryStore for DynamoTaskStore {
    #[tracing::instrument(skip_all, fields(delivery_id = %delivery.id))]
    async fn insert_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        self.table.put_new(to_item(delivery)?).await
    }

    async fn get_delivery(
        &self,
        endpoint: EndpointId,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        self.table
            .get(key(endpoint, id))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(delivery_id = %delivery.id))]
    async fn update_delivery(
        &self,
        delivery: &Delivery,
        seen_attempts: usize,
        seen_status: DeliveryStatus,
    ) -> Result<bool, StoreError> {
        let put = self
            .table
            .client
            .put_item()
            .set_item(Some(to_item(delivery)?))
            .condition_expression("#count = :count AND #status = :status")
            .expression_attribute_names("#count", "attempt_count")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":count", n(seen_attempts))
            .expression_attribute_values(":status", s(seen_status.as_str()));
        self.table.put_if(put).await
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, bool), StoreError> {
        let q = self.table.newest_first(log_key(endpoint), after);
        self.table.query_pages(q, limit, from_item).await
    }
}
