//! Plays Lambda's SQS event source mapping: receive a batch, invoke the function with an
//! `SqsEvent`, delete the messages that succeeded, leave the rest to come back. With
//! `ReportBatchItemFailures`, only the reported messages are kept; a failed invocation
//! keeps the whole batch. Redrive to the dead-letter queue is SQS's (moto's) own doing,
//! after `maxReceiveCount` receives, exactly as in AWS.
//!
//! One difference, for speed: AWS leaves a failed message invisible for the rest of the
//! queue's visibility timeout (minutes); locally it comes back after `retry_delay`.

use crate::function::FunctionPool;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct PollerConfig {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    pub retry_delay: Duration,
    /// The function sets a failed message's visibility itself (a retry schedule); then the
    /// poller leaves it alone, as Lambda's event source mapping always does.
    pub function_sets_visibility: bool,
}

/// The event record Lambda's SQS event source makes of a received message, as
/// `aws_lambda_events` types (the ones the functions read).
fn record(m: &Message, arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = m.message_id().map(str::to_owned);
    record.receipt_handle = m.receipt_handle().map(str::to_owned);
    record.body = m.body().map(str::to_owned);
    record.md5_of_body = m.md5_of_body().map(str::to_owned);
    record.attributes = m
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(arn.to_owned());
    record.aws_region = Some("us-east-1".to_owned());
    record
}

/// Runs until the task is aborted.
pub async fn run(sqs: aws_sdk_sqs::Client, function: Arc<FunctionPool>, config: PollerConfig) {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(config.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                let error = aws_sdk_sqs::error::DisplayErrorContext(e);
                tracing::warn!(function = function.name(), %error, "receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| record(m, &config.queue_arn))
            .collect();
        let failed: HashSet<String> = match function
            .invoke(serde_json::to_vec(&event).unwrap_or_default())
            .await
        {
            Ok(answer) if config.report_batch_item_failures => {
                match serde_json::from_slice::<SqsBatchResponse>(&answer) {
                    Ok(report) => report
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect(),
                    // An unreadable report fails the whole batch, as in AWS.
                    Err(_) => messages
                        .iter()
                        .filter_map(|m| m.message_id().map(str::to_owned))
                        .collect(),
                }
            }
            Ok(_) => HashSet::new(),
            Err(e) => {
                let (function, error) = (function.name(), e);
                tracing::warn!(function, %error, "invocation failed; the batch will be retried");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
        };
        settle(&sqs, &config, &messages, &failed).await;
    }
}

async fn settle(
    sqs: &aws_sdk_sqs::Client,
    config: &PollerConfig,
    messages: &[Message],
    failed: &HashSet<String>,
) {
    let mut deletes = Vec::new();
    let mut retries = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
            continue;
        };
        if failed.contains(id) {
            if config.function_sets_visibility {
                continue;
            }
            retries.push(
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(config.retry_delay.as_secs() as i32)
                    .build(),
            );
        } else {
            deletes.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build(),
            );
        }
    }
    let deletes: Vec<_> = deletes.into_iter().flatten().collect();
    if !deletes.is_empty() {
        if let Err(e) = sqs
            .delete_message_batch()
            .queue_url(&config.queue_url)
            .set_entries(Some(deletes))
            .send()
            .await
        {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "delete failed; messages will be redelivered");
        }
    }
    let retries: Vec<_> = retries.into_iter().flatten().collect();
    if !retries.is_empty() {
        let _visible_again_later_anyway = sqs
            .change_message_visibility_batch()
            .queue_url(&config.queue_url)
            .set_entries(Some(retries))
            .send()
            .await;
    }
}
