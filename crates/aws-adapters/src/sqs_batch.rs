//! The FIFO batch loop shared by the consumer and dead-letter functions, for an SQS trigger
//! with `ReportBatchItemFailures`.
//!
//! Messages are handled one after another, in the order SQS delivered them. Once a message
//! fails, it and every later message of the same message group are reported as failures
//! (not attempted), so order within a group holds on redelivery. A message whose handler
//! succeeded is left out of the report and deleted by the event source mapping.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use std::collections::HashSet;
use std::future::Future;

/// Runs `handle` on each message body in order and reports the failures.
pub async fn process_fifo_batch<F, Fut, E>(
    records: &[SqsMessage],
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failed_groups: HashSet<&str> = HashSet::new();
    let mut failures = Vec::new();
    for record in records {
        let id = record.message_id.as_deref().unwrap_or_default();
        let group = record
            .attributes
            .get("MessageGroupId")
            .map(String::as_str)
            .unwrap_or("");
        if failed_groups.contains(group) {
            failures.push(failure(id));
            continue;
        }
        let result = match record.body.as_deref() {
            Some(body) => handle(body.to_owned()).await.map_err(|e| e.to_string()),
            None => Err("message has no body".to_owned()),
        };
        if let Err(error) = result {
            // The error text names codes and counts, never message content.
            tracing::warn!(message_id = id, error = %error, "message failed; it and the rest of its group go back to the queue");
            failed_groups.insert(group);
            failures.push(failure(id));
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

fn failure(id: &str) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = id.to_owned();
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn msg(id: &str, group: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.attributes = HashMap::from([("MessageGroupId".to_string(), group.to_string())]);
        m
    }

    #[tokio::test]
    async fn a_failure_fails_the_rest_of_its_group_only() {
        let records = [
            msg("1", "a", "ok"),
            msg("2", "a", "fail"),
            msg("3", "b", "ok"),
            msg("4", "a", "ok"),
            msg("5", "b", "ok"),
        ];
        let mut seen = vec![];
        let res = process_fifo_batch(&records, |body| {
            seen.push(body.clone());
            let r = if body == "fail" { Err("boom") } else { Ok(()) };
            async move { r }
        })
        .await;
        let ids: Vec<&str> = res
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, vec!["2", "4"]);
        assert_eq!(seen.len(), 4, "message 4 is not attempted");
    }
}
