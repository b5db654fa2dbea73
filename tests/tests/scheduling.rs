//! Scheduling across callers (docs/scheduling.md), through the local stack with the template's
//! own scheduling settings unless a test says otherwise. Every assertion is about order or
//! counts, never about time: how fast is for `scripts/bench`.

use integration_tests::*;
use serde_json::Value;

fn task_id(a: &Answer) -> String {
    assert_eq!(a.status, 202, "{}", a.body);
    a.body["task_id"].as_str().expect("task_id").to_owned()
}

fn slow_bos(latency_ms: u64) -> bos_simulator::Knobs {
    bos_simulator::Knobs {
        latency_ms,
        ..Default::default()
    }
}

async fn processed(app: &TestApp, token: &str, ids: &[String]) -> u64 {
    let mut sum = 0;
    for id in ids {
        let t = app.get(token, &format!("/tasks/{IMPORT}/{id}")).await;
        sum += t.body["progress"]["processed"].as_u64().unwrap_or(0);
    }
    sum
}

#[tokio::test]
async fn a_small_task_finishes_while_another_callers_backlog_is_unfinished() {
    // Given alice's backlog of 3,000 items with BOS at 100 ms a call: her backlog's pace is set
    // by BOS, bob's small task's by this machine's CPU, which the stack (five functions,
    // DynamoDB Local writing the table's stream, moto) shares with the other tests' stacks;
    // at 100 ms the comparison is about scheduling, not about how busy the two cores are
    let app = spawn_app_with(AppOptions {
        knobs: slow_bos(100),
        ..Default::default()
    })
    .await;
    let mut alice = vec![];
    for t in 0..3u64 {
        alice.push(task_id(
            &app.import(ALICE, &beneficiaries_from(10_000 * (t + 1), 1_000))
                .await,
        ));
    }

    // When bob submits 5 items
    let bob = task_id(&app.import(BOB, &beneficiaries_from(90_000, 5)).await);
    let bob_task = app.wait_final(BOB, &bob).await;

    // Then bob's task is complete before a third of alice's backlog is: he waited behind
    // a window of her chunks, not behind her backlog
    let alice_done = processed(&app, ALICE, &alice).await;
    assert_eq!(bob_task["status"], "completed", "{bob_task}");
    assert!(
        alice_done < 1_000,
        "bob waited for most of alice's backlog ({alice_done} of 3000 done)"
    );

    // And alice's backlog still completes, every item created once
    for id in &alice {
        assert_eq!(app.wait_final(ALICE, id).await["status"], "completed");
    }
    assert_eq!(app.bos_stats().await.creations, 3_005);
}

#[tokio::test]
async fn callers_with_equal_backlogs_advance_together() {
    // Given three callers who each submit 1,200 items while BOS is slow (so the first caller's
    // lanes cannot run ahead while the others are still posting), then BOS at 20 ms
    let app = spawn_app_with(AppOptions {
        knobs: slow_bos(2_000),
        ..Default::default()
    })
    .await;
    let callers = [ALICE, BOB, MORE_CALLERS[0]];
    let mut ids = vec![];
    for (i, token) in callers.iter().enumerate() {
        let items = beneficiaries_from(100_000 * (i as u64 + 1), 1_200);
        ids.push(task_id(&app.import(token, &items).await));
    }
    app.bos.set_knobs(slow_bos(20));

    // When the first of them finishes
    let first = loop {
        let mut finished = None;
        for (i, token) in callers.iter().enumerate() {
            let t = app.get(token, &format!("/tasks/{IMPORT}/{}", ids[i])).await;
            if t.body["status"] == "completed" {
                finished = Some(i);
            }
        }
        if let Some(i) = finished {
            break i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    // Then each of the others is at least 70 % through: nobody waited for another's backlog
    // (a window of 4 chunks of 32 is the most one caller can be ahead by, plus the calls that
    // were in flight when BOS sped up)
    for (i, token) in callers.iter().enumerate().filter(|(i, _)| *i != first) {
        let done = processed(&app, token, std::slice::from_ref(&ids[i])).await;
        assert!(
            done >= 840,
            "caller {i} had {done} of 1200 done when caller {first} finished"
        );
    }
}

#[tokio::test]
async fn bos_never_sees_more_calls_than_the_cap_in_a_storm() {
    // Given a cap of 6 BOS calls shared by 2 consumers (3 each)
    let app = spawn_app_with(AppOptions {
        knobs: slow_bos(30),
        parameters: vec![
            ("BosMaxConcurrentCalls", "6".into()),
            ("ConsumerMaxConcurrency", "2".into()),
        ],
        ..Default::default()
    })
    .await;

    // When 5 callers submit 20 tasks between them
    let callers = [
        ALICE,
        BOB,
        MORE_CALLERS[0],
        MORE_CALLERS[1],
        MORE_CALLERS[2],
    ];
    let mut tasks: Vec<(&str, String)> = vec![];
    for t in 0..20u64 {
        let token = callers[t as usize % callers.len()];
        let items = beneficiaries_from(200_000 + 1_000 * t, 60);
        tasks.push((token, task_id(&app.import(token, &items).await)));
    }
    let mut finals: Vec<Value> = vec![];
    for (token, id) in &tasks {
        finals.push(app.wait_final(token, id).await);
    }

    // Then every item was created once, and BOS never had more than 6 calls at once, though
    // more than one consumer's share ran together (the cap, not a single consumer, held it)
    assert!(finals.iter().all(|t| t["status"] == "completed"));
    let stats = app.bos_stats().await;
    assert_eq!(stats.creations, 20 * 60);
    assert!(
        stats.peak_concurrency <= 6,
        "peak {}",
        stats.peak_concurrency
    );
    assert!(
        stats.peak_concurrency > 3,
        "peak {}",
        stats.peak_concurrency
    );
}
