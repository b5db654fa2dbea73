//! The ingest queue on SQS FIFO. A task's runs share one message group (its id), so they
//! never overlap; each run has its own deduplication id (`{task_id}:ingest:{run}`, or
//! `{task_id}:export`), so a close sent twice within five minutes starts one run, not two.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use tasks_core::ports::{IngestMessage, IngestQueue, QueueError};

#[derive(Clone)]
pub struct SqsIngestQueue {
    client: Client,
    queue_url: String,
}

impl SqsIngestQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }
}

#[async_trait]
impl IngestQueue for SqsIngestQueue {
    #[tracing::instrument(skip_all, fields(task_id = %message.task_id, run = message.run))]
    async fn send(&self, message: IngestMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(&message).map_err(QueueError::new)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(message.task_id.to_string())
            .message_deduplication_id(message.deduplication_id())
            .message_body(body)
            .send()
            .await
            .map_err(QueueError::new)?;
        Ok(())
    }
}
