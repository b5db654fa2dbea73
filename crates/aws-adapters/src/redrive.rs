//! Dead-letter redrive: moves every message of a dead-letter queue back to its work queue, in
//! order, keeping each message's group. Safe to run at any time: the consumer skips items that
//! already have an outcome, so a chunk the dead-letter function has settled changes nothing.
//!
//! Each moved message gets the deduplication id `redrive:{dlq message id}`: its original id
//! would be swallowed by SQS's five-minute deduplication window, and a fresh id per DLQ message
//! keeps a redrive that is itself retried from sending it twice.

use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client;

/// The SQS call a redrive stopped at, and why; messages moved before it stay moved.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("could not receive from the dead-letter queue")]
    Receive(#[source] BoxError),
    #[error("could not send a message back to the work queue")]
    Send(#[source] BoxError),
    #[error("could not delete a moved message from the dead-letter queue")]
    Delete(#[source] BoxError),
}

pub async fn redrive(
    sqs: &Client,
    dead_letter_queue: &str,
    work_queue: &str,
) -> Result<usize, RedriveError> {
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dead_letter_queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| RedriveError::Receive(e.into()))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        for m in &messages {
            let (Some(id), Some(body), Some(handle)) =
                (m.message_id(), m.body(), m.receipt_handle())
            else {
                continue;
            };
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_else(|| "redrive".to_owned());
            sqs.send_message()
                .queue_url(work_queue)
                .message_body(body)
                .message_group_id(group)
                .message_deduplication_id(format!("redrive:{id}"))
                .send()
                .await
                .map_err(|e| RedriveError::Send(e.into()))?;
            sqs.delete_message()
                .queue_url(dead_letter_queue)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| RedriveError::Delete(e.into()))?;
            moved += 1;
        }
    }
}
