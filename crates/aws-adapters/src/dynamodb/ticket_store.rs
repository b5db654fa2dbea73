//! [`TicketStore`] on the task table: live tickets (`tasks_core::live_ticket`).
//!
//! | item   | pk                    | sk       | also |
//! |--------|-----------------------|----------|------|
//! | ticket | `TICKET#{sha256 hex}` | `TICKET` | `subject` (the caller, as the authorizer returns it), `expires_at` |
//!
//! Redeeming is one `DeleteItem` that returns the old item: DynamoDB hands an item's old image
//! to one delete only, so a ticket names its caller exactly once, even to two connections
//! racing with it. The table's TTL removes tickets nobody redeemed.

use super::codec::{corrupt, n, s, Item};
use super::table::store_error;
use super::DynamoTaskStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;
use tasks_core::identity::Owner;
use tasks_core::live_ticket::TicketKey;
use tasks_core::ports::{StoreError, TicketStore};
use time::OffsetDateTime;

fn ticket_key(key: &TicketKey) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("TICKET#{}", key.as_str()))),
        ("sk".into(), s("TICKET")),
    ])
}

#[async_trait]
impl TicketStore for DynamoTaskStore {
    async fn put_ticket(
        &self,
        key: &TicketKey,
        owner: &Owner,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut item = ticket_key(key);
        // The subject, not the storage key: the WebSocket routes take the authorizer's
        // subject as the connection's owner, whichever way the caller signed in.
        item.insert("subject".into(), s(owner.as_str()));
        item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
        self.table.put(item).await
    }

    async fn take_ticket(
        &self,
        key: &TicketKey,
        now: OffsetDateTime,
    ) -> Result<Option<Owner>, StoreError> {
        let out = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(ticket_key(key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.attributes else {
            return Ok(None);
        };
        let expires_at = match item.get("expires_at") {
            Some(AttributeValue::N(v)) => v.parse::<i64>().map_err(|_| corrupt("expires_at"))?,
            _ => return Err(corrupt("expires_at")),
        };
        if expires_at <= now.unix_timestamp() {
            return Ok(None);
        }
        match item.get("subject") {
            Some(AttributeValue::S(subject)) => Ok(Owner::from_subject(subject)),
            _ => Err(corrupt("subject")),
        }
    }
}
