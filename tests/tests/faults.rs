//! Fault injection: whatever fails, every item of every task ends final, BOS creates each
//! beneficiary at most once, and no task is left stuck. Each scenario prints a row of the
//! table in the README (`scripts/test --test faults -- --nocapture` shows them).

use integration_tests::faults::{socket_of, FaultyProxy, OwnDynamoDb};
use integration_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

fn task_id(a: &Answer) -> String {
    a.body["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task_id in {}", a.body))
        .to_owned()
}

/// One row: scenario, items, BOS creations, duplicates, final status.
fn report(scenario: &str, task: &Value, stats: &bos_simulator::Stats) {
    let succeeded = task["progress"]["succeeded"].as_u64().unwrap_or(0);
    println!(
        "| {scenario} | {} | {} | {} | {} | {} |",
        task["progress"]["total"],
        stats.creations,
        stats.creations.saturating_sub(succeeded),
        task["status"].as_str().unwrap_or("?"),
        stats.replays,
    );
}

fn is_final(task: &Value) -> bool {
    !["queued", "running"].contains(&task["status"].as_str().unwrap_or("queued"))
}

fn knobs() -> bos_simulator::Knobs {
    bos_simulator::Knobs::default()
}

#[tokio::test]
async fn a_bos_failing_30_percent_of_calls_still_creates_every_item_exactly_once() {
    // Given a BOS that fails 30 % of calls (500, 503, 429) and loses 10 % of its answers after
    // creating, and three consumers on the queue
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            failure_rate: 0.3,
            failure_statuses: vec![500, 503, 429],
            lost_response_rate: 0.1,
            ..knobs()
        },
        parameters: vec![("ConsumerMaxConcurrency", "3".into())],
        ..Default::default()
    })
    .await;

    // When 500 beneficiaries are imported
    let id = task_id(&app.import(ALICE, &beneficiaries(500)).await);
    let task = app.wait_final(ALICE, &id).await;

    // Then all are created, each exactly once
    let stats = app.bos_stats().await;
    report(
        "(a) BOS fails 30 % transiently, loses 10 % of answers",
        &task,
        &stats,
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["succeeded"], 500);
    assert_eq!(stats.creations, 500);
    assert!(
        stats.transient_failures > 0 && stats.lost_responses > 0,
        "{stats:?}"
    );
    assert!(
        stats.replays >= stats.lost_responses,
        "every lost answer was recovered by a replay"
    );
}

#[tokio::test]
async fn b_a_consumer_crash_mid_chunk_is_redelivered_without_duplicates() {
    // Given a consumer that aborts after its 40th BOS call, before recording anything
    let (app, marker) = spawn_app_crashing_after(40).await;

    let id = task_id(&app.import(ALICE, &beneficiaries(200)).await);
    let task = app.wait_final(ALICE, &id).await;

    let stats = app.bos_stats().await;
    report("(b) consumer process dies mid-chunk", &task, &stats);
    assert!(marker.exists(), "the failpoint fired");
    assert!(app.function_logs().contains("failpoint: crashing"));
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(stats.creations, 200);
    assert!(
        stats.replays >= 1,
        "the redelivered chunk met BOS's first answers: {stats:?}"
    );
}

#[tokio::test]
async fn c_a_chunk_that_always_fails_ends_in_the_dlq_and_its_item_processing_failed() {
    // Given one IBAN BOS can never process, in the second of four chunks
    let items = beneficiaries_from(5_000, 20);
    let poison = items[7]["iban"].as_str().unwrap().to_owned();
    let app = spawn_app_with(AppOptions::dead_lettering(poison)).await;

    let id = task_id(&app.import(ALICE, &items).await);
    let task = app.wait_final(ALICE, &id).await;

    // Then after maxReceiveCount receives the chunk went to the DLQ, the dead-letter function
    // sent it back to be settled, BOS was asked once more and still failed, so the one pending
    // item failed naming that cause; everything else was created once
    let stats = app.bos_stats().await;
    report("(c) a chunk that always fails (DLQ)", &task, &stats);
    assert_eq!(task["status"], "completed_with_errors", "{task}");
    assert_eq!(
        (
            task["progress"]["succeeded"].as_u64(),
            task["progress"]["failed"].as_u64()
        ),
        (Some(19), Some(1))
    );
    let errors = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{id}/errors"))
        .await;
    assert_eq!(errors.body["errors"][0]["index"], 7);
    assert_eq!(errors.body["errors"][0]["code"], "upstream_unavailable");
    assert_eq!(stats.creations, 19);
    app.wait_queue_empty("WorkDeadLetterQueue").await;
}

#[tokio::test]
async fn d_sqs_down_at_post_is_503_with_nothing_left_and_the_same_request_succeeds_later() {
    // Given an api function that reaches SQS through a proxy we can switch off
    let moto = socket_of(
        &std::env::var("SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into()),
    );
    let proxy = FaultyProxy::start(moto).await;
    let app = spawn_app_with(AppOptions {
        extra_env: vec![("AWS_ENDPOINT_URL_SQS", proxy.url())],
        ..Default::default()
    })
    .await;
    let items = beneficiaries(30);

    // When SQS is down
    proxy.set_down(true);
    let refused = app
        .post_idempotent(ALICE, &format!("/tasks/{IMPORT}"), "import-d", &items)
        .await;

    // Then the client gets 503 and nothing is left behind: no task, no idempotency record
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "queue_unavailable");
    assert_eq!(app.table_item_kinds().await, Default::default());
    assert_eq!(
        app.get(ALICE, &format!("/tasks/{IMPORT}")).await.body["tasks"],
        json!([])
    );

    // And once SQS is back, the very same request succeeds
    proxy.set_down(false);
    let accepted = app
        .post_idempotent(ALICE, &format!("/tasks/{IMPORT}"), "import-d", &items)
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let task = app.wait_final(ALICE, &task_id(&accepted)).await;
    let stats = app.bos_stats().await;
    report("(d) SQS down at POST, then back", &task, &stats);
    assert_eq!(task["status"], "completed");
    assert_eq!(stats.creations, 30);
}

#[tokio::test]
async fn e_dynamodb_stopped_and_restarted_mid_task_still_completes_correctly() {
    // Given a stack on its own DynamoDB Local (on disk), a slowish BOS and small chunks
    let dir = std::env::temp_dir().join(format!("ddb-{}", uuid::Uuid::new_v4()));
    let mut db = OwnDynamoDb::start(dir).await;
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            latency_ms: 50,
            ..knobs()
        },
        dynamodb_endpoint: Some(db.url()),
        extra_env: vec![("CHUNK_SIZE", "10".into())],
        // The outage must not exhaust the receives: this scenario is about the store.
        parameters: vec![
            ("MaxReceiveCount", "10".into()),
            ("BosMaxConcurrentCalls", "4".into()),
            ("ConsumerMaxConcurrency", "2".into()),
        ],
        retry_delay: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let id = task_id(&app.import(ALICE, &beneficiaries(300)).await);

    // When DynamoDB goes away while the task runs, and comes back
    for _ in 0..300 {
        let t = app.get(ALICE, &format!("/tasks/{IMPORT}/{id}")).await;
        if t.body["progress"]["processed"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.up().await;

    // Then the task completes with every item created once
    let task = app.wait_final(ALICE, &id).await;
    let stats = app.bos_stats().await;
    report("(e) DynamoDB stopped and restarted mid-task", &task, &stats);
    assert!(
        app.function_logs().contains("message failed"),
        "the outage hit processing"
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["succeeded"], 300);
    assert_eq!(stats.creations, 300);
}

#[tokio::test]
async fn f_a_hanging_bos_times_out_retries_and_completes() {
    // Given a BOS that, on 20 % of calls, does the work and then hangs for 3 s, and a client
    // that waits 300 ms
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            hang_rate: 0.2,
            hang_ms: 3_000,
            ..knobs()
        },
        extra_env: vec![("BOS_REQUEST_TIMEOUT_MS", "300".into())],
        ..Default::default()
    })
    .await;

    let id = task_id(&app.import(ALICE, &beneficiaries(100)).await);
    let task = app.wait_final(ALICE, &id).await;

    let stats = app.bos_stats().await;
    report("(f) BOS hangs past the client time-out", &task, &stats);
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(stats.creations, 100);
    assert!(stats.hangs > 0 && stats.replays > 0, "{stats:?}");
}

#[tokio::test]
async fn g_a_dlq_redrive_finishes_the_task_and_replaying_final_chunks_changes_nothing() {
    // Given a chunk stuck in the DLQ (dead-letter function paused) because BOS refused one IBAN
    let items = beneficiaries_from(7_000, 10);
    let poison = items[3]["iban"].as_str().unwrap().to_owned();
    let app = spawn_app_with(AppOptions {
        parameters: vec![("MaxReceiveCount", "2".into())],
        paused_event_sources: vec!["DeadLetterFunction"],
        ..AppOptions::dead_lettering(poison)
    })
    .await;
    let id = task_id(&app.import(ALICE, &items).await);
    app.wait_queue_not_empty("WorkDeadLetterQueue").await;
    app.wait_queue_empty("WorkQueue").await;
    let stuck = app.get(ALICE, &format!("/tasks/{IMPORT}/{id}")).await;
    assert_eq!(stuck.body["status"], "running");
    assert_eq!(stuck.body["progress"]["processed"], 9);

    // When BOS is fixed and the DLQ is redriven
    app.bos.set_knobs(knobs());
    let moved = aws_adapters::redrive::redrive(
        &app.sqs,
        &app.queue_url("WorkDeadLetterQueue"),
        &app.queue_url("WorkQueue"),
    )
    .await
    .unwrap();
    assert_eq!(moved, 1);

    // Then the task completes, each beneficiary created once
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(app.bos_stats().await.creations, 10);

    // And replaying every chunk of the finished task changes nothing
    let before = app.bos_stats().await;
    let owner_items: Vec<_> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| tasks_core::beneficiary::Beneficiary::parse(v).unwrap())
        .collect();
    // Each replayed chunk names alice's lanes, as the real ones do: a duplicate hands nothing on.
    let alice = tasks_core::identity::Owner::from_subject("alice").unwrap();
    let chunks = tasks_core::chunk::split(
        id.parse().unwrap(),
        tasks_core::task::TaskType::BeneficiariesImport,
        &alice.storage_key(),
        owner_items,
        5,
    );
    for c in &chunks {
        app.sqs
            .send_message()
            .queue_url(app.queue_url("WorkQueue"))
            .message_body(serde_json::to_string(c).unwrap())
            .message_group_id(format!("replay-{}", c.chunk))
            .message_deduplication_id(format!("replay-{}", c.chunk))
            .send()
            .await
            .unwrap();
    }
    app.wait_queue_empty("WorkQueue").await;
    let after = app.bos_stats().await;
    assert_eq!(
        after.requests, before.requests,
        "no BOS call for final items"
    );
    let replayed = app.get(ALICE, &format!("/tasks/{IMPORT}/{id}")).await;
    assert_eq!(replayed.body["progress"], task["progress"]);
    report(
        "(g) DLQ redrive, then every chunk replayed",
        &replayed.body,
        &after,
    );
}

#[tokio::test]
async fn h_crash_churn_with_a_slow_bos_reports_no_failure_that_bos_created() {
    // Given BOS at 150 ms a call and messages that reach the DLQ after 2 receives
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            latency_ms: 150,
            ..knobs()
        },
        parameters: vec![("MaxReceiveCount", "2".into())],
        ..Default::default()
    })
    .await;
    let id = task_id(&app.import(ALICE, &beneficiaries_from(60_000, 2_000)).await);

    // When a consumer process is killed every 2 s until the task is final
    let mut kills = 0;
    let task = loop {
        let t = app.get(ALICE, &format!("/tasks/{IMPORT}/{id}")).await.body;
        if is_final(&t) {
            break t;
        }
        assert!(kills < 300, "the task never became final: {t}");
        let pids = app
            .stack
            .function_pids()
            .into_iter()
            .find(|(name, _)| name.ends_with("ConsumerFunction"))
            .map(|(_, pids)| pids)
            .unwrap_or_default();
        if let Some(pid) = pids.get(kills % pids.len().max(1)).filter(|p| **p != 0) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            kills += 1;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    // Then every item is final, none twice at BOS, and no item is failed that BOS created:
    // a dead chunk was settled by asking BOS, not by guessing
    let stats = app.bos_stats().await;
    report(
        "(h) crash churn: a consumer killed every 2 s, BOS 150 ms",
        &task,
        &stats,
    );
    assert!(kills >= 2, "the churn happened ({kills} kills)");
    assert_eq!(task["progress"]["processed"], 2_000, "{task}");
    assert_eq!(
        stats.creations,
        task["progress"]["succeeded"].as_u64().unwrap_or(0),
        "every creation is reported as a success, and only those: {stats:?} {task}"
    );
}
