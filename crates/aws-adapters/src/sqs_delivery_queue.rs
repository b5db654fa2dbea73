//! The webhook delivery queue on SQS (standard: deliveries need no order, and one delivery
//! has one record that refuses a second attempt, so a duplicate message is harmless). It also
//! holds a message back for the retry schedule: the sender sets the message's visibility to
//! the wait and reports it failed, so SQS brings it back then (up to 12 hours).

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
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
        for batch in messages.chunks(10) {
            let mut entries = Vec::with_capacity(batch.len());
            for (i, m) in batch.iter().enumerate() {
                let body = serde_json::to_string(m).map_err(QueueError::new)?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(QueueError::new)?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(QueueError::new)?;
            if !out.failed().is_empty() {
                // The stream record comes back, and the notifier queues what is unsent.
                return Err(QueueError::new(format!(
                    "{} delivery message(s) refused by SQS",
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }
}
