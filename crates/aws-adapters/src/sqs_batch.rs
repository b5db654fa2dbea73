//! The FIFO batch loop shared by the consumer and dead-letter functions, for an SQS trigger
//! with `ReportBatchItemFailures`.
//!
//! FIFO order is a promise per message group, so that is where order is kept: the messages of
//! one group are handled one after another, in delivery order, and once one fails, it and every
//! later message of its group are reported as failures without being attempted, so the group
//! comes back in order. Different groups share nothing, so they are handled concurrently: one
//! group's slow BOS calls or DynamoDB writes do not hold up another's. A message whose handler
//! succeeded is left out of the report and deleted by the event source mapping.
//!
//! Each message runs in its task's trace ([`tasks_core::trace`]): the record's `AWSTraceHeader`,
//! else the trace its body carries, else the invocation's own. Its log lines carry the trace id.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::future::Future;
use tasks_core::error::Chain;
use tasks_core::trace::{self, Trace, Traced};
use tracing::Instrument;

/// Whether SQS delivered this message before (`ApproximateReceiveCount` above 1).
pub fn redelivered(record: &SqsMessage) -> bool {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| c > 1)
}

/// The trace SQS carried with the message, as the event source mapping hands it over.
pub fn record_trace(record: &SqsMessage) -> Option<Trace> {
    record
        .attributes
        .get("AWSTraceHeader")
        .and_then(|header| Trace::from_xray_header(header))
}

/// What to do with a message whose body is not a message of this queue. No delivery will ever
/// decode it; the choice is where an operator gets to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecodable {
    /// Report it failed: it comes back until `maxReceiveCount`, then waits in the dead-letter
    /// queue, where its alarm fires. Right for the work queue.
    Fail,
    /// Log it and let it be deleted: there is no queue behind this one, and keeping it would
    /// block its group for good. Right for the dead-letter queue.
    Drop,
}

/// Decodes each message body as an `M` and runs `handle` on it (with whether it is a
/// redelivery), in order within each group, and reports the failures.
pub async fn process_fifo_batch<M, F, Fut, E>(
    records: &[SqsMessage],
    undecodable: Undecodable,
    handle: F,
) -> SqsBatchResponse
where
    M: DeserializeOwned + Traced,
    F: Fn(M, bool) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
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
    let group_failures = groups.into_iter().map(|(_, messages)| async move {
        let mut failed: Vec<&str> = Vec::new();
        for record in messages {
            let id = record.message_id.as_deref().unwrap_or_default();
            if !failed.is_empty() {
                failed.push(id);
                continue;
            }
            let message = match decode::<M>(record) {
                Ok(message) => message,
                Err(why) if undecodable == Undecodable::Drop => {
                    tracing::error!(message_id = id, %why, "undecodable message dropped");
                    continue;
                }
                Err(why) => {
                    tracing::error!(message_id = id, %why, "undecodable message failed");
                    failed.push(id);
                    continue;
                }
            };
            let trace = record_trace(record)
                .or_else(|| message.trace().cloned())
                .or_else(trace::current);
            let span = tracing::info_span!(
                "message",
                message_id = id,
                trace_id = trace
                    .as_ref()
                    .map(|t| tracing::field::display(t.trace_id()))
            );
            let handled = trace::within(trace, handle(message, redelivered(record)));
            if let Err(error) = handled.instrument(span.clone()).await {
                // The chain names codes and counts, never message content.
                let error = Chain(&error);
                span.in_scope(|| tracing::warn!(%error, "message failed; its group goes back"));
                failed.push(id);
            }
        }
        failed
    });
    let failed: HashSet<&str> = futures::future::join_all(group_failures)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = records
        .iter()
        .filter_map(|r| r.message_id.as_deref())
        .filter(|id| failed.contains(id))
        .map(failure)
        .collect();
    response
}

/// Why a body is not a message of this queue: where it stopped making sense, never the body
/// itself (it may carry beneficiaries), which serde's own message could quote.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("message has no body")]
    Missing,
    #[error("line {line} column {column}: {category:?}")]
    Json {
        line: usize,
        column: usize,
        category: serde_json::error::Category,
    },
}

fn decode<M: DeserializeOwned>(record: &SqsMessage) -> Result<M, BodyError> {
    let body = record.body.as_deref().ok_or(BodyError::Missing)?;
    serde_json::from_str(body).map_err(|e| BodyError::Json {
        line: e.line(),
        column: e.column(),
        category: e.classify(),
    })
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

    /// A test message: a JSON string, in no trace of its own.
    #[derive(serde::Deserialize)]
    #[serde(transparent)]
    struct Body(String);

    impl Traced for Body {
        fn trace(&self) -> Option<&Trace> {
            None
        }
    }

    /// A message whose body is the JSON string `body`.
    fn msg(id: &str, group: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(serde_json::to_string(body).unwrap());
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
        let res = process_fifo_batch(&records, Undecodable::Fail, |Body(body), _| {
            seen.lock().unwrap().push(body.clone());
            async move {
                if body == "fail" {
                    Err(std::io::Error::other("boom"))
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

    #[tokio::test]
    async fn undecodable_messages_fail_or_drop_as_the_queue_says() {
        let mut broken = msg("2", "a", "x");
        broken.body = Some("{not json".into());
        let records = [msg("1", "a", "a1"), broken, msg("3", "a", "a3")];
        let records = &records;
        let failed = |policy| async move {
            let seen = Mutex::new(vec![]);
            let res = process_fifo_batch(records, policy, |Body(body), _| {
                seen.lock().unwrap().push(body);
                async { Ok::<(), std::io::Error>(()) }
            })
            .await;
            let ids: Vec<String> = res
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            (ids, seen.into_inner().unwrap())
        };
        // The work queue: it goes back, and its group after it.
        assert_eq!(
            failed(Undecodable::Fail).await,
            (vec!["2".to_owned(), "3".to_owned()], vec!["a1".to_owned()])
        );
        // The dead-letter queue: it is dropped, and its group goes on.
        assert_eq!(
            failed(Undecodable::Drop).await,
            (vec![], vec!["a1".to_owned(), "a3".to_owned()])
        );
    }

    #[tokio::test]
    async fn each_message_runs_in_the_trace_sqs_carried_else_the_invocations() {
        let carried = Trace::new_root();
        let invocation = Trace::new_root();
        let mut with_header = msg("1", "a", "a1");
        with_header
            .attributes
            .insert("AWSTraceHeader".into(), carried.xray_header());
        let records = [with_header, msg("2", "b", "b1")];
        let seen = Mutex::new(HashMap::new());
        let seen_ref = &seen;
        let run = process_fifo_batch(&records, Undecodable::Fail, |Body(body), _| async move {
            // Inside the future: where the handler's work (and its BOS calls) happens.
            seen_ref.lock().unwrap().insert(body, trace::current());
            Ok::<(), std::io::Error>(())
        });
        trace::within(Some(invocation.clone()), run).await;
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen["a1"], Some(carried));
        assert_eq!(seen["b1"], Some(invocation));
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
