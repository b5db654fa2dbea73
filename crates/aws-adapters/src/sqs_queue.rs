//! The work queue on SQS FIFO: chunks go out with `SendMessageBatch`, ten per call. Each
//! message's deduplication id is `{task_id}:{chunk}`, so resending after a partial failure is
//! harmless; entries SQS refused are resent a few times before the enqueue gives up.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use std::time::Duration;
use tasks_core::chunk::ChunkMessage;
use tasks_core::ports::{QueueError, WorkQueue};

const BATCH: usize = 10;
const ATTEMPTS: usize = 4;

#[derive(Clone)]
pub struct SqsWorkQueue {
    client: Client,
    queue_url: String,
    groups_per_task: u32,
}

impl SqsWorkQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, groups_per_task: u32) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            groups_per_task,
        }
    }

    pub fn from_config(
        config: &aws_config::SdkConfig,
        queue_url: impl Into<String>,
        groups_per_task: u32,
    ) -> Self {
        Self::new(Client::new(config), queue_url, groups_per_task)
    }

    async fn send_batch(&self, batch: &[&ChunkMessage]) -> Result<(), QueueError> {
        let mut pending: Vec<&ChunkMessage> = batch.to_vec();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let mut entries = Vec::with_capacity(pending.len());
            for c in &pending {
                let body = serde_json::to_string(c)
                    .map_err(|e| QueueError::Unavailable(format!("cannot encode chunk: {e}")))?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(c.chunk.to_string())
                    .message_body(body)
                    .message_group_id(c.group_id(self.groups_per_task))
                    .message_deduplication_id(c.deduplication_id())
                    .build()
                    .map_err(|e| QueueError::Unavailable(e.to_string()))?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Unavailable(DisplayErrorContext(e).to_string()))?;
            let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
            if failed.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                failed = failed.len(),
                attempt,
                "some chunks were not accepted; resending"
            );
            pending.retain(|c| failed.contains(&c.chunk.to_string().as_str()));
        }
        Err(QueueError::Unavailable(format!(
            "{} chunk(s) refused by SQS",
            pending.len()
        )))
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    #[tracing::instrument(skip_all, fields(chunks = chunks.len()))]
    async fn enqueue(&self, chunks: &[ChunkMessage]) -> Result<(), QueueError> {
        // Batches go out one after another: order across a task's chunks is kept and a
        // failure stops the rest, which the caller then abandons with the task.
        let refs: Vec<&ChunkMessage> = chunks.iter().collect();
        for batch in refs.chunks(BATCH) {
            self.send_batch(batch).await?;
        }
        Ok(())
    }
}
