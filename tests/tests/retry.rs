//! Retrying a finished task's failed items: only those that failed on the way (unless
//! `include=all_failed`), as a new task linked both ways, each item keeping its original index
//! and external id, and sending BOS the idempotency key of its first attempt.

use integration_tests::*;
use serde_json::{json, Value};

fn task_path(id: &str) -> String {
    format!("/tasks/{IMPORT}/{id}")
}

fn id_of(answer: &Answer) -> String {
    answer.body["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task_id in {}", answer.body))
        .to_owned()
}

#[tokio::test]
async fn a_retry_takes_only_the_retryable_item_and_completes_it() {
    // Given a finished task with one success, one BOS rejection (duplicate) and one item that
    // failed upstream (BOS never processed it, through the dead-letter queue)
    let poison = german_iban(9_402);
    let app = spawn_app_with(AppOptions::dead_lettering(poison.clone())).await;
    let items = json!([
        {"name": "Ada", "country": "DE", "currency": "EUR", "iban": german_iban(9_401), "external_id": "ok-0"},
        {"name": "Alan", "country": "GB", "currency": "GBP", "iban": bos_simulator::EXISTING_IBAN, "external_id": "dup-1"},
        {"name": "Grace", "country": "DE", "currency": "EUR", "iban": poison, "external_id": "down-2"},
    ]);
    let original = id_of(&app.import(ALICE, &items).await);
    let task = app.wait_final(ALICE, &original).await;
    assert_eq!(task["status"], "completed_with_errors", "{task}");
    assert_eq!(task["retried_by"], Value::Null);

    // When BOS is back and the client retries (with an Idempotency-Key, sent twice)
    app.bos.set_knobs(bos_simulator::Knobs::default());
    let retry_path = format!("{}/retry", task_path(&original));
    let answer = app
        .post_idempotent(ALICE, &retry_path, "retry-1", &json!(null))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let retry = id_of(&answer);
    assert_eq!(answer.body["retry_of"], original.as_str());
    assert_eq!(
        answer.body["progress"]["total"], 1,
        "only the upstream failure"
    );
    assert_eq!(answer.body["links"]["retry_of"], task_path(&original));
    let again = app
        .post_idempotent(ALICE, &retry_path, "retry-1", &json!(null))
        .await;
    assert_eq!((again.status, id_of(&again)), (202, retry.clone()));

    // Then the retry completes the item under its original index and external id, and the
    // two tasks link to each other
    let done = app.wait_final(ALICE, &retry).await;
    assert_eq!(done["status"], "completed", "{done}");
    let result = app
        .get(ALICE, &format!("{}/result", task_path(&retry)))
        .await;
    let results = result.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (
            &results[0]["index"],
            &results[0]["external_id"],
            &results[0]["status"]
        ),
        (&json!(2), &json!("down-2"), &json!("succeeded"))
    );
    let original_now = app.get(ALICE, &task_path(&original)).await.body;
    assert_eq!(original_now["retried_by"], retry.as_str());
    assert_eq!(original_now["links"]["retried_by"], task_path(&retry));

    // And BOS was asked with the item's first key (so an earlier creation would have been
    // replayed, not repeated), created it once, and was never asked about the duplicate again
    let calls = app.bos.calls();
    let last = calls.last().unwrap();
    assert_eq!(
        last.idempotency_key.as_deref(),
        Some(&*format!("{original}:2"))
    );
    let stats = app.bos_stats().await;
    assert_eq!(stats.creations, 2, "{stats:?}");
    let duplicate_calls = calls
        .iter()
        .filter(|c| c.idempotency_key.as_deref() == Some(&*format!("{original}:1")))
        .count();
    assert_eq!(duplicate_calls, 1, "the rejection was not retried");

    // And a task is retried once; a retry with nothing left to retry is 422
    let twice = app.post_json(ALICE, &retry_path, &json!(null)).await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert_eq!(twice.body["error"]["code"], "task_already_retried");
    let nothing = app
        .post_json(ALICE, &format!("{}/retry", task_path(&retry)), &json!(null))
        .await;
    assert_eq!(nothing.status, 422, "{}", nothing.body);
    assert_eq!(nothing.body["error"]["code"], "nothing_to_retry");

    // And another caller cannot retry it or see that it exists
    let bob = app.post_json(BOB, &retry_path, &json!(null)).await;
    assert_eq!(bob.status, 404);
}

#[tokio::test]
async fn include_all_failed_retries_rejections_with_a_new_key() {
    // Given a finished task whose only failure is a rejection
    let app = spawn_app().await;
    let items = json!([
        {"name": "Alan", "country": "GB", "currency": "GBP", "iban": bos_simulator::EXISTING_IBAN, "external_id": "dup-0"},
    ]);
    let original = id_of(&app.import(ALICE, &items).await);
    app.wait_final(ALICE, &original).await;
    let retry_path = format!("{}/retry", task_path(&original));

    // Then the default retry has nothing to take, and an unknown include is 400
    let none = app.post_json(ALICE, &retry_path, &json!(null)).await;
    assert_eq!(none.body["error"]["code"], "nothing_to_retry");
    let bad = app
        .post_json(
            ALICE,
            &format!("{retry_path}?include=everything"),
            &json!(null),
        )
        .await;
    assert_eq!(bad.status, 400);

    // And include=all_failed sends it again with a key of the new task's (the old one would
    // only replay the rejection)
    let answer = app
        .post_json(
            ALICE,
            &format!("{retry_path}?include=all_failed"),
            &json!(null),
        )
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let retry = id_of(&answer);
    let done = app.wait_final(ALICE, &retry).await;
    assert_eq!(
        done["status"], "completed_with_errors",
        "BOS still has it: {done}"
    );
    let last = app.bos.calls().pop().unwrap();
    assert_eq!(
        last.idempotency_key.as_deref(),
        Some(&*format!("{retry}:0"))
    );
}

#[tokio::test]
async fn retrying_a_task_that_is_not_final_is_409() {
    // Given a task nobody works on yet (the consumer's queue is not polled)
    let app = spawn_app_with(AppOptions {
        paused_event_sources: vec!["ConsumerFunction"],
        ..Default::default()
    })
    .await;
    let id = id_of(&app.import(ALICE, &beneficiaries(3)).await);

    let answer = app
        .post_json(ALICE, &format!("{}/retry", task_path(&id)), &json!(null))
        .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "task_not_final");
}
