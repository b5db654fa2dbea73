//! The webhook delivery queue on SQS (standard: deliveries need no order, and one delivery
//! has one record that refuses a second attempt, so a duplicate message is harmless). It also
//! holds a message back for the retry schedule: the sender sets the message's visibility to
//! the wait and reports it failed, so SQS brings it back then (up to 12 hours).

use crate::sqs_send::{numbered, send_batch, Refused, MAX_ENTRIES};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use std::time::Duration;
use tasks_core::ports::{DeliveryQueue, QueueError};
use tasks_core::webhook_delivery::DeliveryMessage;

/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone)]
pub struct SqsDeliveryQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeliveryQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }

    /// The ingest queue on the same client (the notifier sends exports there).
    pub fn ingest_queue(&self, queue_url: impl Into<String>) -> crate::SqsIngestQueue {
        crate::SqsIngestQueue::new(self.client.clone(), queue_url)
    }

    /// Brings a received message back after `wait` instead of the queue's visibility timeout.
    pub async fn hold(&self, receipt_handle: &str, wait: Duration) -> Result<(), QueueError> {
        let seconds = wait.min(MAX_VISIBILITY).as_secs_f64().ceil() as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(QueueError::new)?;
        Ok(())
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        for batch in messages.chunks(MAX_ENTRIES) {
            let batch = numbered(batch);
            let refused = send_batch(&self.client, &self.queue_url, &batch, |_, e| Ok(e)).await?;
            if !refused.is_empty() {
                // The stream record comes back, and the notifier queues what is unsent.
                return Err(QueueError::new(Refused(refused.len())));
            }
        }
        Ok(())
    }
}
