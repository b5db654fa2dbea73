//! The FIFO batch loop shared by the consumer and dead-letter functions, for an SQS trigger
//! with `ReportBatchItemFailures`.
//!
//! FIFO order is a promise per message group, so that is where order is kept: the messages of
//! one group are handled one after another, in delivery order, and once one fails, it and every
//! later message of its group are reported as failures without being attempted, so the group
//! comes back in order. Different groups share nothing, so they are handled concurrently: one
//! group's slow BOS calls or DynamoDB writes do not hold up another's. A message whose handler
//! succeeded is left out of the report and deleted by the event source mapping.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use std::collections::HashSet;
use std::future::Future;

/// Whether SQS delivered this message before (`ApproximateReceiveCount` above 1).
pub fn redelivered(record: &SqsMessage) -> bool {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| c > 1)
}

/// Runs `handle` on each message body (with whether it is a redelivery), in order within each
/// group, and reports the failures.
pub async fn process_fifo_batch<F, Fut, E>(records: &[SqsMessage], handle: F) -> SqsBatchResponse
where
    F: Fn(String, bool) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut groups: Vec<(&str, Vec<&SqsMessage>)> = Vec::new();
    for record in records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .map(String::as_str)
            .unwrap_or("");
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, messages)) => messages.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let handle = &handle;
    let failed_per_group = futures::future::join_all(groups.into_iter().map(|(_, messages)| async move {
        let mut failed: Vec<&str> = Vec::new();
        for record in messages {
            let id = record.message_id.as_deref().unwrap_or_default();
            if !failed.is_empty() {
                failed.push(id);
                continue;
            }
            let result = match record.body.as_deref() {
                Some(body) => handle(body.to_owned(), redelivered(record))
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("message has no body".to_owned()),
            };
            if let Err(error) = result {
                // The error text names codes and counts, never message content.
                tracing::warn!(message_id = id, error = %error, "message failed; it and the rest of its group go back to the queue");
                failed.push(id);
            }
        }
        failed
    }))
    .await;
    let failed: HashSet<&str> = failed_per_group.into_iter().flatten().collect();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = records
        .iter()
        .filter_map(|r| r.message_id.as_deref())
        .filter(|id| failed.contains(id))
        .map(failure)
        .collect();
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
    use std::sync::Mutex;

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
            msg("1", "a", "a1"),
            msg("2", "a", "fail"),
            msg("3", "b", "b1"),
            msg("4", "a", "a3"),
            msg("5", "b", "b2"),
        ];
        let seen = Mutex::new(vec![]);
        let res = process_fifo_batch(&records, |body, _| {
            seen.lock().unwrap().push(body.clone());
            async move {
                if body == "fail" {
                    Err("boom")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let ids: Vec<&str> = res
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, vec!["2", "4"]);
        let seen = seen.into_inner().unwrap();
        assert!(
            !seen.contains(&"a3".to_owned()),
            "message 4 is not attempted"
        );
        // Within each group, delivery order holds.
        let pos = |b: &str| seen.iter().position(|s| s == b).unwrap();
        assert!(pos("a1") < pos("fail"));
        assert!(pos("b1") < pos("b2"));
    }

    #[test]
    fn receive_counts_above_one_are_redeliveries() {
        let mut m = msg("1", "a", "x");
        assert!(!redelivered(&m), "no count: a first delivery");
        m.attributes
            .insert("ApproximateReceiveCount".into(), "1".into());
        assert!(!redelivered(&m));
        m.attributes
            .insert("ApproximateReceiveCount".into(), "2".into());
        assert!(redelivered(&m));
    }
}
