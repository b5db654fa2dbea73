//! The work queue on SQS FIFO: messages go out with `SendMessageBatch`, ten per call, the
//! calls of one enqueue concurrently. Each message's deduplication id names it
//! (`{task_id}:{chunk}`, `{task_id}:start:{lane}`), so resending after a partial failure is
//! harmless; entries SQS refused are resent a few times before the enqueue gives up. Each
//! message carries its task's trace as `AWSTraceHeader` ([`tasks_core::trace`]).

use crate::sqs_send::{numbered, send_batch, Refused, MAX_ENTRIES};
use async_trait::async_trait;
use aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder;
use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue};
use aws_sdk_sqs::Client;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tasks_core::chunk::WorkMessage;
use tasks_core::ports::{QueueError, WorkQueue};
use tasks_core::trace::{Trace, Traced};

const ATTEMPTS: usize = 4;
/// `SendMessageBatch` calls of one enqueue in flight at once.
pub const PARALLEL_BATCHES: usize = 4;

#[derive(Clone)]
pub struct SqsWorkQueue {
    client: Client,
    queue_url: String,
    parallel_batches: usize,
}

impl SqsWorkQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            parallel_batches: PARALLEL_BATCHES,
        }
    }

    /// The webhook delivery queue on the same client: every client built costs cold-start
    /// time.
    pub fn delivery_queue(&self, queue_url: impl Into<String>) -> crate::SqsDeliveryQueue {
        crate::SqsDeliveryQueue::new(self.client.clone(), queue_url)
    }

    /// The ingest queue on the same client.
    pub fn ingest_queue(&self, queue_url: impl Into<String>) -> crate::SqsIngestQueue {
        crate::SqsIngestQueue::new(self.client.clone(), queue_url)
    }

    /// Another number of batches in flight (for the benchmark that compares them).
    pub fn with_parallel_batches(mut self, n: usize) -> Self {
        self.parallel_batches = n.max(1);
        self
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }

    /// One batch, resending what SQS refused a few times: each message's deduplication id
    /// makes a resend harmless.
    async fn send_batch(&self, batch: &[WorkMessage]) -> Result<(), QueueError> {
        let mut pending = numbered(batch);
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let refused = send_batch(&self.client, &self.queue_url, &pending, |m, entry| {
                addressed(entry, m, m.deduplication_id())
            })
            .await?;
            if refused.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                failed = refused.len(),
                attempt,
                "some messages were not accepted; resending"
            );
            pending.retain(|(id, _)| refused.contains(id));
        }
        Err(QueueError::new(Refused(pending.len())))
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    async fn enqueue(&self, messages: &[WorkMessage]) -> Result<(), QueueError> {
        // No order is owed between messages (each is a group of its own), so batches go out
        // concurrently; any failure fails the enqueue, and a retry is deduplicated.
        let sends: Vec<_> = messages
            .chunks(MAX_ENTRIES)
            .map(|batch| self.send_batch(batch))
            .collect();
        futures::stream::iter(sends)
            .buffer_unordered(self.parallel_batches)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The message again in its own group, under a fresh deduplication id: the copy must not
    /// be taken for a resend of the original within SQS's five-minute window.
    #[tracing::instrument(skip_all)]
    async fn requeue(&self, message: &WorkMessage) -> Result<(), QueueError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let fresh = format!("{}:held:{nanos}", message.deduplication_id());
        let one = numbered(std::slice::from_ref(message));
        let refused = send_batch(&self.client, &self.queue_url, &one, |m, entry| {
            addressed(entry, m, fresh.clone())
        })
        .await?;
        if !refused.is_empty() {
            return Err(QueueError::new(Refused(refused.len())));
        }
        Ok(())
    }
}

/// An entry for `m`: its group, the given deduplication id, and its trace.
fn addressed(
    entry: SendMessageBatchRequestEntryBuilder,
    m: &WorkMessage,
    deduplication_id: String,
) -> Result<SendMessageBatchRequestEntryBuilder, QueueError> {
    Ok(entry
        .message_group_id(m.group_id())
        .message_deduplication_id(deduplication_id)
        .set_message_system_attributes(m.trace().map(trace_attribute).transpose()?))
}

/// The `AWSTraceHeader` system attribute: how AWS documents carrying a trace from a sender
/// through SQS to the Lambda function that receives the message (it arrives in the record's
/// `attributes`). The body carries the trace too, so the chunk keeps it while it waits in the
/// table for a lane, and on emulators that drop system attributes from batch sends (moto).
fn trace_attribute(
    trace: &Trace,
) -> Result<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>, QueueError> {
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(trace.xray_header())
        .build()
        .map_err(QueueError::new)?;
    Ok(HashMap::from([(
        MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}
