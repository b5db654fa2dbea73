//! [`WebhookStore`] on the task table:
//!
//! | item             | pk          | sk     | also |
//! |------------------|-------------|--------|------|
//! | webhook endpoint | `WHEP#{id}` | `WHEP` | `gsi1pk = OWNER#{sha256(owner)}#WEBHOOKS`, `gsi1sk = {created_at ns}#{id}` (listing, newest first); `url`, `event_types`, `description`, `status`, `secrets` (JSON), `created_at`, `updated_at`, `failing_since` |
//! | delivery         | `WHEP#{id}` | `DLV#{delivery id}` | see `delivery_store` |
//!
//! The signing secrets are stored with the endpoint, since the sender signs with them; the
//! table is encrypted at rest, and nothing here logs them.

use super::codec::corrupt;
use super::codec::{rfc3339, s, Item};
use super::table::store_error;
use super::DynamoTaskStore;
use async_trait::async_trait;
use std::collections::HashMap;
use tasks_core::identity::Owner;
use tasks_core::ports::{StoreError, WebhookStore};
use tasks_core::webhook::{EndpointId, EndpointStatus, EventType, SigningSecret, WebhookEndpoint};
use tasks_core::webhook_url::{TargetPolicy, WebhookUrl};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn endpoint_key(id: EndpointId) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("WHEP#{id}"))),
        ("sk".into(), s("WHEP")),
    ])
}

fn listing_key(owner: &Owner) -> String {
    format!("OWNER#{}#WEBHOOKS", owner.storage_key())
}

fn to_item(e: &WebhookEndpoint) -> Result<Item, StoreError> {
    let mut item = endpoint_key(e.id);
    item.insert("gsi1pk".into(), s(listing_key(&e.owner)));
    item.insert("gsi1sk".into(), s(e.list_position()));
    item.insert("owner".into(), s(e.owner.as_str()));
    item.insert("url".into(), s(e.url.as_str()));
    let types: Vec<&str> = e.event_types.iter().map(|t| t.as_str()).collect();
    item.insert("event_types".into(), s(types.join(",")));
    if let Some(d) = &e.description {
        item.insert("description".into(), s(d));
    }
    item.insert("status".into(), s(e.status.as_str()));
    let secrets = serde_json::to_string(&e.secrets).map_err(StoreError::permanent)?;
    item.insert("secrets".into(), s(secrets));
    item.insert("created_at".into(), s(rfc3339(e.created_at)));
    item.insert("updated_at".into(), s(rfc3339(e.updated_at)));
    if let Some(t) = e.failing_since {
        item.insert("failing_since".into(), s(rfc3339(t)));
    }
    Ok(item)
}

fn from_item(item: &Item) -> Result<WebhookEndpoint, StoreError> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
    let date = |k: &'static str| {
        text(k)
            .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
            .ok_or_else(|| corrupt(k))
    };
    let secrets: Vec<SigningSecret> = text("secrets")
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(|| corrupt("secrets"))?;
    Ok(WebhookEndpoint {
        id: text("pk")
            .and_then(|pk| pk.strip_prefix("WHEP#"))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| corrupt("pk"))?,
        owner: text("owner")
            .and_then(Owner::from_subject)
            .ok_or_else(|| corrupt("owner"))?,
        // Stored URLs passed the rules when registered; the loose policy only re-reads them
        // (the sender checks where they point before every delivery).
        url: text("url")
            .and_then(|u| WebhookUrl::parse(u, TargetPolicy::local()).ok())
            .ok_or_else(|| corrupt("url"))?,
        event_types: text("event_types")
            .map(|v| v.split(',').filter_map(EventType::parse).collect())
            .ok_or_else(|| corrupt("event_types"))?,
        description: text("description").map(str::to_owned),
        status: text("status")
            .and_then(EndpointStatus::parse)
            .ok_or_else(|| corrupt("status"))?,
        secrets,
        created_at: date("created_at")?,
        updated_at: date("updated_at")?,
        failing_since: text("failing_since").and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok()),
    })
}

#[async_trait]
impl WebhookStore for DynamoTaskStore {
    #[tracing::instrument(skip_all, fields(endpoint_id = %endpoint.id))]
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        // Its id is random: a put that finds one is a bug worth an error, not a `false`.
        if !self.table.put_new(to_item(endpoint)?).await? {
            return Err(StoreError::permanent("webhook endpoint id already taken"));
        }
        Ok(())
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.table
            .get(endpoint_key(id))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(endpoint_id = %endpoint.id))]
    async fn replace_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        seen: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let put = self
            .table
            .client
            .put_item()
            .set_item(Some(to_item(endpoint)?))
            .condition_expression("#updated_at = :seen")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":seen", s(rfc3339(seen)));
        self.table.put_if(put).await
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError> {
        self.table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(endpoint_key(id)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn list_endpoints(
        &self,
        owner: &Owner,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<WebhookEndpoint>, bool), StoreError> {
        let q = self.table.newest_first(listing_key(owner), after);
        self.table.query_pages(q, limit, from_item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_items_round_trip() {
        let url =
            WebhookUrl::parse("https://hooks.example.com/x", TargetPolicy::default()).unwrap();
        let mut e = WebhookEndpoint::new(
            Owner::from_subject("alice").unwrap(),
            url,
            vec![EventType::TaskFailed, EventType::TaskCompleted],
            Some("ops".into()),
            OffsetDateTime::UNIX_EPOCH,
        );
        e.rotate(OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(1));
        assert_eq!(from_item(&to_item(&e).unwrap()).unwrap(), e);
    }
}
