//! Webhook endpoints and deliveries in memory, the delivery queue, and a receiver that answers
//! as told and keeps what it got.

use super::{lock, MemoryStore};
use crate::identity::Owner;
use crate::ports::*;
use crate::webhook::EndpointId;
use crate::webhook::WebhookEndpoint;
use crate::webhook_delivery::Delivery;
use crate::webhook_delivery::DeliveryMessage;
use crate::webhook_delivery::DeliveryStatus;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use time::OffsetDateTime;

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        lock(&self.webhooks).insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(lock(&self.webhooks).get(&id).cloned())
    }

    async fn replace_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        seen: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut all = lock(&self.webhooks);
        match all.get_mut(&endpoint.id) {
            Some(current) if current.updated_at == seen => {
                *current = endpoint.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError> {
        lock(&self.webhooks).remove(&id);
        Ok(())
    }

    async fn list_endpoints(
        &self,
        owner: &Owner,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<WebhookEndpoint>, bool), StoreError> {
        let mut mine: Vec<WebhookEndpoint> = lock(&self.webhooks)
            .values()
            .filter(|e| &e.owner == owner)
            .filter(|e| after.is_none_or(|a| e.list_position().as_str() < a))
            .cloned()
            .collect();
        mine.sort_by_key(|e| std::cmp::Reverse(e.list_position()));
        let more = mine.len() > limit;
        mine.truncate(limit);
        Ok((mine, more))
    }
}

#[async_trait]
impl DeliveryStore for MemoryStore {
    async fn insert_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let mut all = lock(&self.deliveries);
        if all.contains_key(&delivery.id) {
            return Ok(false);
        }
        all.insert(delivery.id.clone(), delivery.clone());
        Ok(true)
    }

    async fn get_delivery(
        &self,
        endpoint: EndpointId,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        Ok(lock(&self.deliveries)
            .get(id)
            .filter(|d| d.endpoint_id == endpoint)
            .cloned())
    }

    async fn update_delivery(
        &self,
        delivery: &Delivery,
        seen_attempts: usize,
        seen_status: DeliveryStatus,
    ) -> Result<bool, StoreError> {
        let mut all = lock(&self.deliveries);
        match all.get_mut(&delivery.id) {
            Some(d) if d.attempts.len() == seen_attempts && d.status == seen_status => {
                *d = delivery.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, bool), StoreError> {
        let position =
            |d: &Delivery| format!("{:020}#{}", d.created_at.unix_timestamp_nanos(), d.id);
        let mut mine: Vec<Delivery> = lock(&self.deliveries)
            .values()
            .filter(|d| d.endpoint_id == endpoint)
            .filter(|d| after.is_none_or(|a| position(d).as_str() < a))
            .cloned()
            .collect();
        mine.sort_by_key(|d| std::cmp::Reverse(position(d)));
        let more = mine.len() > limit;
        mine.truncate(limit);
        Ok((mine, more))
    }
}

/// Delivery messages, kept in order.
#[derive(Default)]
pub struct MemoryDeliveryQueue {
    sent: Mutex<Vec<DeliveryMessage>>,
}

impl MemoryDeliveryQueue {
    pub fn sent(&self) -> Vec<DeliveryMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl DeliveryQueue for MemoryDeliveryQueue {
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        lock(&self.sent).extend_from_slice(messages);
        Ok(())
    }
}

/// One request a [`MemoryPoster`] got: its headers and body.
pub type Received = (Vec<(&'static str, String)>, String);

/// A receiver that answers with the statuses it is given, in turn (then the last one again),
/// and keeps every request it got.
#[derive(Default)]
pub struct MemoryPoster {
    answers: Mutex<VecDeque<Result<u16, &'static str>>>,
    received: Mutex<Vec<Received>>,
}

impl MemoryPoster {
    pub fn answering(answers: &[Result<u16, &'static str>]) -> Self {
        Self {
            answers: Mutex::new(answers.iter().copied().collect()),
            ..Self::default()
        }
    }

    /// Headers and body of each request, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }
}

#[async_trait]
impl WebhookPoster for MemoryPoster {
    async fn post(&self, post: WebhookPost<'_>) -> Result<u16, &'static str> {
        lock(&self.received).push((post.headers.clone(), post.body.to_owned()));
        let mut answers = lock(&self.answers);
        match answers.len() {
            0 => Ok(200),
            1 => answers[0],
            _ => answers.pop_front().unwrap_or(Ok(200)),
        }
    }
}
