//! One trace from the `POST` to every BOS call: the api keeps Lambda's trace on the task record
//! and its chunks, SQS carries it (`AWSTraceHeader`, and the chunk body), the consumer and the
//! dead-letter function run each message in it, and every BOS call carries it as W3C
//! `traceparent` and `X-Amzn-Trace-Id`, across process crashes, redeliveries and the DLQ.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use tasks_core::trace::Trace;

fn task_id(a: &Answer) -> String {
    a.body["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task_id in {}", a.body))
        .to_owned()
}

/// The trace the task record keeps (DynamoDB attribute `trace`, an X-Ray header).
async fn stored_trace(app: &TestApp, id: &str) -> Trace {
    let item = app
        .ddb
        .get_item()
        .table_name(app.table())
        .set_key(Some(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("TASK#{id}"))),
            ("sk".to_owned(), AttributeValue::S("TASK".into())),
        ])))
        .send()
        .await
        .expect("get task record")
        .item
        .expect("task record");
    let header = item
        .get("trace")
        .and_then(|v| v.as_s().ok())
        .unwrap_or_else(|| panic!("the task record keeps no trace: {item:?}"));
    Trace::from_xray_header(header).expect("an X-Ray header")
}

/// The W3C form of an X-Ray trace id: `1-5759e988-bd86…` → `5759e988bd86…`.
fn w3c(trace_id: &str) -> String {
    trace_id.trim_start_matches("1-").replace('-', "")
}

/// Checks every BOS call the simulator saw against the task's trace; returns how many.
fn assert_every_call_carries(app: &TestApp, trace: &Trace) -> usize {
    let calls = app.bos.calls();
    assert!(!calls.is_empty(), "BOS saw no call");
    let expected = w3c(&trace.trace_id());
    let mut spans = HashSet::new();
    for call in &calls {
        let parent = call
            .traceparent
            .as_deref()
            .unwrap_or_else(|| panic!("a BOS call without traceparent: {call:?}"));
        let fields: Vec<&str> = parent.split('-').collect();
        assert_eq!(fields.len(), 4, "{parent}");
        assert_eq!(fields[1], expected, "a BOS call in another trace: {call:?}");
        let xray = call.xray.as_deref().unwrap_or_default();
        let root = Trace::from_xray_header(xray)
            .unwrap_or_else(|| panic!("no X-Amzn-Trace-Id on {call:?}"));
        assert_eq!(root.trace_id(), trace.trace_id(), "{call:?}");
        spans.insert(fields[2].to_owned());
    }
    assert_eq!(
        spans.len(),
        calls.len(),
        "each attempt is a span of its own"
    );
    calls.len()
}

/// The JSON log lines of `binary` that were written inside a span named `span`.
fn lines_in_span(app: &TestApp, binary: &str, span: &str) -> Vec<Value> {
    app.function_log(binary)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == span))
        })
        .collect()
}

/// The `trace_id` of the innermost span of `line` that has one.
fn trace_of(line: &Value) -> Option<&str> {
    line["spans"]
        .as_array()?
        .iter()
        .rev()
        .find_map(|s| s["trace_id"].as_str())
}

#[tokio::test]
async fn every_bos_call_carries_the_posts_trace_across_a_crash_and_a_redelivery() {
    // Given a consumer process that dies after its 40th BOS call (the pool starts another,
    // and SQS redelivers the chunk it held)
    let (app, marker) = spawn_app_crashing_after(40).await;

    // When a client imports 300 beneficiaries
    let id = task_id(&app.import(ALICE, &beneficiaries(300)).await);
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert!(
        marker.exists(),
        "the failpoint fired: a second process did the rest"
    );
    let stats = app.bos_stats().await;
    assert!(
        stats.replays >= 1,
        "a redelivered chunk met BOS again: {stats:?}"
    );

    // Then the task record keeps the trace of the POST, the api logged it, and every BOS call,
    // from both processes and the redelivery, is a span of that trace
    let trace = stored_trace(&app, &id).await;
    let calls = assert_every_call_carries(&app, &trace);
    assert!(
        calls >= 300 + stats.replays as usize,
        "{calls} calls, {stats:?}"
    );
    let queued: Vec<Value> = lines_in_span(&app, "api", "request")
        .into_iter()
        .filter(|l| l["fields"]["message"] == "task queued")
        .collect();
    assert_eq!(queued.len(), 1);
    assert_eq!(trace_of(&queued[0]), Some(trace.trace_id().as_str()));
    assert_eq!(queued[0]["fields"]["task_id"], id.as_str());

    // And every consumer log line about a message carries the task's trace id
    let consumed = lines_in_span(&app, "consumer", "message");
    assert!(
        consumed
            .iter()
            .any(|l| l["fields"]["message"] == "message done"),
        "the consumer logged its messages"
    );
    for line in &consumed {
        assert_eq!(trace_of(line), Some(trace.trace_id().as_str()), "{line}");
        if line["fields"]["message"] == "message done" {
            assert_eq!(line["fields"]["task_id"], id.as_str(), "{line}");
        }
    }
}

#[tokio::test]
async fn the_dead_letter_path_keeps_the_trace() {
    // Given one IBAN BOS can never process, so its chunk ends in the dead-letter queue
    let items = beneficiaries_from(7_000, 10);
    let poison = items[3]["iban"].as_str().unwrap().to_owned();
    let app = spawn_app_with(AppOptions::dead_lettering(poison)).await;

    let id = task_id(&app.import(ALICE, &items).await);
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed_with_errors", "{task}");

    // Then the dead-letter function settled the chunk in the task's trace, and the last BOS
    // call for the poisoned item (the settle, made after the DLQ) carries it like every other
    let trace = stored_trace(&app, &id).await;
    assert_every_call_carries(&app, &trace);
    let settled: Vec<Value> = lines_in_span(&app, "dead-letter", "message")
        .into_iter()
        .filter(|l| l["fields"]["message"] == "dead letter settled")
        .collect();
    assert!(
        !settled.is_empty(),
        "the dead-letter function settled the chunk"
    );
    for line in &settled {
        assert_eq!(trace_of(line), Some(trace.trace_id().as_str()), "{line}");
    }
}
