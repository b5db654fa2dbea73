//! The delivery log of one endpoint (`GET /webhook-endpoints/{id}/deliveries`) and the manual
//! retry (`POST …/deliveries/{delivery_id}/retry`), which sends a delivery again at once and
//! restarts its schedule. Both go through the endpoint's ownership check.

use crate::error::AppError;
use crate::identity::Owner;
use crate::paging::PageTokens;
use crate::ports::{DeliveryQueue, DeliveryStore, WebhookStore};
use crate::usecases::read_task::PageSize;
use crate::usecases::webhook_endpoints::get;
use crate::webhook::{EndpointId, EventType};
use crate::webhook_delivery::{Attempt, Delivery, DeliveryMessage, DeliveryStatus};
use serde::Serialize;
use time::OffsetDateTime;

/// Page sizes of the delivery log.
pub const DELIVERY_PAGE: PageSize = PageSize {
    default: 20,
    max: 100,
};

/// A delivery as the log shows it: what was sent when, and how each attempt went.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        let mut attempts = d.attempts.clone();
        attempts.reverse(); // newest first, like the log
        Self {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type,
            status: d.status,
            attempts,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub next_page_token: Option<String>,
}

/// Where a delivery stands in its endpoint's newest-first log.
fn position(d: &Delivery) -> String {
    format!("{:020}#{}", d.created_at.unix_timestamp_nanos(), d.id)
}

pub struct LogQuery<'a> {
    pub owner: &'a Owner,
    pub endpoint: EndpointId,
    pub page_token: Option<&'a str>,
    pub limit: usize,
}

pub async fn log(
    endpoints: &dyn WebhookStore,
    deliveries: &dyn DeliveryStore,
    tokens: &PageTokens,
    q: &LogQuery<'_>,
) -> Result<DeliveryPage, AppError> {
    get(endpoints, q.owner, q.endpoint).await?;
    let scope = format!("deliveries|{}|{}", q.owner.as_str(), q.endpoint);
    let read = |after: Option<String>| async move {
        let listed = deliveries.list_deliveries(q.endpoint, after.as_deref(), q.limit);
        Ok::<_, AppError>(listed.await?)
    };
    let (page, next_page_token) = tokens.page(&scope, q.page_token, read, position).await?;
    Ok(DeliveryPage {
        deliveries: page.iter().map(DeliveryView::from).collect(),
        next_page_token,
    })
}

/// Sends a finished delivery (succeeded or failed) again now, with a fresh schedule.
pub async fn retry(
    endpoints: &dyn WebhookStore,
    deliveries: &dyn DeliveryStore,
    queue: &dyn DeliveryQueue,
    owner: &Owner,
    endpoint: EndpointId,
    id: &str,
) -> Result<DeliveryView, AppError> {
    get(endpoints, owner, endpoint).await?;
    let mut delivery = deliveries
        .get_delivery(endpoint, id)
        .await?
        .ok_or(AppError::WebhookDeliveryNotFound)?;
    if delivery.status == DeliveryStatus::Pending {
        return Err(AppError::WebhookDeliveryInProgress);
    }
    let (seen_attempts, seen_status) = (delivery.attempts.len(), delivery.status);
    let before = delivery.clone();
    delivery.restart();
    if !deliveries
        .update_delivery(&delivery, seen_attempts, seen_status)
        .await?
    {
        return Err(AppError::WebhookDeliveryInProgress);
    }
    let message = DeliveryMessage {
        endpoint_id: endpoint,
        delivery_id: delivery.id.clone(),
    };
    if let Err(e) = queue.enqueue(&[message]).await {
        // Leave it as it was, so the client can try again.
        deliveries
            .update_delivery(&before, seen_attempts, DeliveryStatus::Pending)
            .await?;
        tracing::error!(error = %crate::error::Chain(&e), "manual retry could not be queued");
        return Err(AppError::QueueUnavailable);
    }
    tracing::info!(endpoint_id = %endpoint, delivery_id = %delivery.id, "delivery retried by hand");
    Ok(DeliveryView::from(&delivery))
}
