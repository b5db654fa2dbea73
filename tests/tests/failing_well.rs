//! Failing well (issue 23), end to end through the local gateway and the BOS simulator: a file
//! BOS refuses row by row stops after a handful of calls (tolerated failures), and a BOS outage
//! makes tasks wait, not fail (the breaker in front of BOS). Each test prints the figures it
//! measured (`scripts/test --test failing_well -- --nocapture`); none asserts a duration.

use integration_tests::*;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn task_id(a: &Answer) -> String {
    assert_eq!(a.status, 202, "{}", a.body);
    a.body["task_id"].as_str().expect("task_id").to_owned()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn count(task: &Value, counter: &str) -> u64 {
    task["progress"][counter].as_u64().unwrap_or(0)
}

/// Waits until the task has processed at least `n` items.
async fn processed_at_least(app: &TestApp, token: &str, id: &str, n: u64) {
    let path = format!("/tasks/{IMPORT}/{id}");
    let reached = eventually(|| async {
        let t = app.get(token, &path).await;
        (count(&t.body, "processed") >= n).then_some(())
    })
    .await;
    assert!(reached.is_some(), "task {id} never processed {n} items");
}

fn outage() -> bos_simulator::Knobs {
    bos_simulator::Knobs {
        latency_ms: 50,
        failure_rate: 1.0,
        failure_statuses: vec![503],
        ..Default::default()
    }
}

fn healthy() -> bos_simulator::Knobs {
    bos_simulator::Knobs {
        latency_ms: 50,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_file_bos_refuses_row_by_row_stops_early_and_a_retry_sends_the_rest() {
    // Given a BOS that refuses every beneficiary
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            refuse_rate: 1.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;

    // (a limit out of range is refused, naming the parameter, and creates nothing)
    for bad in [
        "tolerated_failure_percent=101",
        "tolerated_failure_count=-1",
    ] {
        let path = format!("/tasks/{IMPORT}?{bad}");
        let a = app.post_json(ALICE, &path, &beneficiaries(2)).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.body["error"]["code"], "invalid_query_parameter");
    }

    // When a 2,000-item task that tolerates 10 % failed items runs
    let path = format!("/tasks/{IMPORT}?tolerated_failure_percent=10");
    let id = task_id(&app.post_json(ALICE, &path, &beneficiaries(2_000)).await);
    let task = app.wait_final(ALICE, &id).await;

    // Then it stopped: failed, for that reason, its counters adding up, BOS asked far fewer
    // than 2,000 times (bounded by the 201 failures that pass the limit, plus the chunks the
    // consumers had in work then: 4 consumers × batches of 2 × 32 items)
    let calls = app.bos_stats().await.requests;
    println!(
        "| all-refused 2,000-item task, 10 % tolerated | {calls} BOS calls | failed {} | not attempted {} |",
        count(&task, "failed"),
        count(&task, "not_attempted")
    );
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["failure_reason"], "tolerated_failures_exceeded");
    let parts = ["succeeded", "failed", "not_attempted", "cancelled"];
    let sum: u64 = parts.iter().map(|c| count(&task, c)).sum();
    assert_eq!((sum, count(&task, "processed")), (2_000, 2_000), "{task}");
    assert!(count(&task, "failed") > 200, "{task}");
    assert!(calls <= 201 + 4 * 2 * 32, "{calls} calls");
    assert_eq!(
        calls,
        count(&task, "failed"),
        "one call per failed item, none for the rest"
    );
    let result = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{id}/result?limit=1000"))
        .await;
    let statuses: Vec<&str> = result.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|o| o["status"].as_str())
        .collect();
    assert!(statuses.contains(&"not_attempted"), "{}", result.body);

    // And once BOS accepts them, a retry of everything that failed or was not attempted
    // completes the task's items, each created once
    app.bos.set_knobs(Default::default());
    let retry = app
        .request(
            reqwest::Method::POST,
            ALICE,
            &format!("/tasks/{IMPORT}/{id}/retry?include=all_failed"),
        )
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 202);
    let retry: Value = retry.json().await.expect("json");
    let retry_id = retry["task_id"].as_str().expect("task_id");
    assert_eq!(retry["progress"]["total"], 2_000);
    let done = app.wait_final(ALICE, retry_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(app.bos_stats().await.creations, 2_000);
}

#[tokio::test]
async fn a_30_second_bos_outage_mid_task_makes_it_wait_not_fail() {
    // Given a 2,000-item task under way, BOS at 50 ms a call
    let app = spawn_app_with(AppOptions {
        knobs: healthy(),
        ..Default::default()
    })
    .await;
    let id = task_id(&app.import(ALICE, &beneficiaries(2_000)).await);
    processed_at_least(&app, ALICE, &id, 300).await;

    // When BOS answers 503 to everything for 30 s
    let down = now_ms();
    app.bos.set_knobs(outage());
    let path = format!("/tasks/{IMPORT}/{id}");
    let waiting = eventually(|| async {
        let t = app.get(ALICE, &path).await.body;
        (t["progress"]["waiting_for_upstream"] == true).then_some(t)
    })
    .await
    .expect("the task says it waits for BOS");
    assert_eq!(count(&waiting, "failed"), 0, "{waiting}");
    tokio::time::sleep(Duration::from_millis(
        (down + 30_000).saturating_sub(now_ms()),
    ))
    .await;
    let up = now_ms();
    app.bos.set_knobs(healthy());
    let task = app.wait_final(ALICE, &id).await;

    // Then nothing failed, every item was created exactly once, nothing reached the DLQ, and
    // while the breaker was open BOS saw only probes, at most one every 2 s
    let during = app.bos.calls_between(down, up);
    let probes = app.bos.calls_between(down + 5_000, up);
    println!(
        "| 30 s BOS outage mid 2,000-item task | {} BOS calls during it, {} of them probes after the first 5 s |",
        during.len(),
        probes.len()
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(
        (count(&task, "succeeded"), count(&task, "failed")),
        (2_000, 0)
    );
    let stats = app.bos_stats().await;
    assert_eq!(stats.creations, 2_000, "{stats:?}");
    assert_eq!(app.queue_depth("WorkDeadLetterQueue").await, 0);
    assert!(
        during.len() < 300,
        "{} calls during the outage",
        during.len()
    );
    for pair in probes.windows(2) {
        assert!(pair[1] - pair[0] >= 1_900, "probes {probes:?}");
    }
    assert!(!probes.is_empty(), "the breaker probed");
    assert!(task["progress"]["waiting_for_upstream"] == false);
}

#[tokio::test]
async fn an_outage_under_two_callers_resumes_both_and_the_small_task_first() {
    // Given alice's 1,500 items under way and bob's 100 submitted just before BOS goes down
    let app = spawn_app_with(AppOptions {
        knobs: healthy(),
        ..Default::default()
    })
    .await;
    let alice = task_id(&app.import(ALICE, &beneficiaries_from(1, 1_500)).await);
    processed_at_least(&app, ALICE, &alice, 200).await;
    let bob = task_id(&app.import(BOB, &beneficiaries_from(100_000, 100)).await);

    // When BOS is down for 15 s
    app.bos.set_knobs(outage());
    tokio::time::sleep(Duration::from_secs(15)).await;
    app.bos.set_knobs(healthy());

    // Then both complete with nothing failed, and bob's small task is not stuck behind alice's
    // backlog: it finishes first
    let bob_done = app.wait_final(BOB, &bob).await;
    let alice_now = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{alice}"))
        .await
        .body;
    let alice_done = app.wait_final(ALICE, &alice).await;
    println!(
        "| 15 s outage, two callers | bob done with alice at {} of 1,500 |",
        count(&alice_now, "processed")
    );
    assert_eq!(bob_done["status"], "completed", "{bob_done}");
    assert_eq!(alice_done["status"], "completed", "{alice_done}");
    assert!(count(&alice_now, "processed") < 1_500, "{alice_now}");
    assert_eq!(app.bos_stats().await.creations, 1_600);
}

#[tokio::test]
async fn a_429_with_retry_after_5_holds_every_call_for_5_seconds() {
    // Given a 1,000-item task under way
    let app = spawn_app_with(AppOptions {
        knobs: healthy(),
        ..Default::default()
    })
    .await;
    let id = task_id(&app.import(ALICE, &beneficiaries(1_000)).await);
    processed_at_least(&app, ALICE, &id, 200).await;

    // When BOS answers 429 with Retry-After: 5 to every call for 2 s
    let limited = now_ms();
    app.bos.set_knobs(bos_simulator::Knobs {
        latency_ms: 50,
        failure_rate: 1.0,
        failure_statuses: vec![429],
        retry_after_secs: 5,
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.bos.set_knobs(healthy());
    let task = app.wait_final(ALICE, &id).await;

    // Then from the first 429 until 5 s later, BOS saw at most one round of calls per consumer
    // (those started before the consumer heard of it, from its own 429 or the table): no more
    // than the BOS cap (32), where retries and new chunks would have sent hundreds
    let after: Vec<u64> = app
        .bos
        .calls()
        .iter()
        .map(|c| c.at_ms)
        .filter(|at| *at >= limited)
        .collect();
    let first_429 = *after.iter().min().expect("calls after the switch");
    let within = app.bos.calls_between(first_429, first_429 + 5_000);
    let relative: Vec<u64> = within.iter().map(|c| c - first_429).collect();
    println!(
        "| 429 Retry-After: 5 | {} calls within 5 s of the first 429 (ms after it: {relative:?}) |",
        within.len()
    );
    assert!(
        within.len() <= 32,
        "calls before Retry-After passed: {relative:?}"
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(app.bos_stats().await.creations, 1_000);
}
