//! One `SendMessageBatch` call, shared by the work queue and the webhook delivery queue: each
//! keeps its own policy for entries SQS refuses (the work queue resends them, the delivery
//! queue fails the enqueue and lets its stream record come back).

use aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use serde::Serialize;
use tasks_core::ports::QueueError;

/// SQS's most entries in one `SendMessageBatch`.
pub const MAX_ENTRIES: usize = 10;

/// Some entries of a batch were refused by SQS, and the queue's policy gave up on them.
#[derive(Debug, thiserror::Error)]
#[error("{0} message(s) refused by SQS")]
pub struct Refused(pub usize);

/// Sends `messages` (at most [`MAX_ENTRIES`]), each as its JSON body under its given entry
/// id, with what `attributes` adds (group, deduplication id, trace); returns the ids refused.
pub(crate) async fn send_batch<M: Serialize>(
    client: &Client,
    queue_url: &str,
    messages: &[(String, &M)],
    attributes: impl Fn(
        &M,
        SendMessageBatchRequestEntryBuilder,
    ) -> Result<SendMessageBatchRequestEntryBuilder, QueueError>,
) -> Result<Vec<String>, QueueError> {
    let mut entries = Vec::with_capacity(messages.len());
    for (id, message) in messages {
        let body = serde_json::to_string(message).map_err(QueueError::new)?;
        let entry = SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body);
        entries.push(
            attributes(message, entry)?
                .build()
                .map_err(QueueError::new)?,
        );
    }
    let out = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(QueueError::new)?;
    Ok(out.failed().iter().map(|f| f.id().to_owned()).collect())
}

/// Entry ids for `messages`: their positions.
pub(crate) fn numbered<M>(messages: &[M]) -> Vec<(String, &M)> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| (i.to_string(), m))
        .collect()
}
