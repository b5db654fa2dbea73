//! The task API contract beyond the happy path: listing, pagination, idempotency keys,
//! cancellation, ownership, expiry, the second task type and input limits.

use integration_tests::*;
use serde_json::{json, Value};

const VALIDATION: &str = "beneficiaries-validation";

fn task_id(a: &Answer) -> String {
    a.body["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task_id in {}", a.body))
        .to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn listing_is_the_callers_newest_first_paged_and_filtered() {
    // Given three tasks of alice's and one of bob's
    let app = spawn_app().await;
    let mut alice = vec![];
    for n in 1..=3 {
        let a = app
            .import(ALICE, &beneficiaries_from(100 * n as u64, n))
            .await;
        alice.push(task_id(&a));
        app.wait_final(ALICE, alice.last().unwrap()).await;
    }
    let bobs = task_id(&app.import(BOB, &beneficiaries_from(900, 1)).await);

    // When alice lists two at a time
    let p1 = app.get(ALICE, &format!("/tasks/{IMPORT}?limit=2")).await;
    assert_eq!(p1.status, 200, "{}", p1.body);
    let token = p1.body["next_page_token"].as_str().unwrap().to_owned();
    let p2 = app
        .get(
            ALICE,
            &format!("/tasks/{IMPORT}?limit=2&page_token={token}"),
        )
        .await;

    // Then she sees exactly her tasks, newest first, across pages
    let mut seen = ids(&p1.body);
    seen.extend(ids(&p2.body));
    assert_eq!(
        seen,
        vec![alice[2].clone(), alice[1].clone(), alice[0].clone()]
    );
    assert!(p2.body["next_page_token"].is_null());
    assert_eq!(
        ids(&app.get(BOB, &format!("/tasks/{IMPORT}")).await.body),
        vec![bobs]
    );

    // Filters
    let done = app
        .get(ALICE, &format!("/tasks/{IMPORT}?status=completed"))
        .await;
    assert_eq!(ids(&done.body).len(), 3);
    let none = app
        .get(ALICE, &format!("/tasks/{IMPORT}?status=cancelled"))
        .await;
    assert_eq!(ids(&none.body).len(), 0);
    assert_eq!(
        ids(&app.get(ALICE, &format!("/tasks/{VALIDATION}")).await.body).len(),
        0
    );

    // A token is bound to caller and filters, and cannot be forged
    for (who, query) in [
        (BOB, format!("limit=2&page_token={token}")),
        (ALICE, format!("status=completed&page_token={token}")),
        (ALICE, format!("page_token={}x", &token[..token.len() - 1])),
        (ALICE, "page_token=not-a-token".to_owned()),
    ] {
        let a = app.get(who, &format!("/tasks/{IMPORT}?{query}")).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (400, Some("invalid_page_token")),
            "{query}"
        );
    }
    for bad in [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=101",
        "status=done",
    ] {
        let a = app.get(ALICE, &format!("/tasks/{IMPORT}?{bad}")).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (400, Some("invalid_query_parameter")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn idempotency_key_replays_refuses_reuse_and_is_per_caller() {
    let app = spawn_app().await;
    let path = format!("/tasks/{IMPORT}");
    let body = beneficiaries(2);

    let first = app
        .post_idempotent(ALICE, &path, "import-2026-11-22", &body)
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = app
        .post_idempotent(ALICE, &path, "import-2026-11-22", &body)
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(
        task_id(&again),
        task_id(&first),
        "the first answer is replayed"
    );
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let other_body = app
        .post_idempotent(ALICE, &path, "import-2026-11-22", &beneficiaries(3))
        .await;
    assert_eq!(other_body.status, 422);
    assert_eq!(other_body.body["error"]["code"], "idempotency_key_reused");

    let bobs = app
        .post_idempotent(BOB, &path, "import-2026-11-22", &body)
        .await;
    assert_eq!(bobs.status, 202);
    assert_ne!(task_id(&bobs), task_id(&first), "keys belong to one caller");

    let bad_key = app.post_idempotent(ALICE, &path, "has spaces", &body).await;
    assert_eq!(
        (bad_key.status, bad_key.body["error"]["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );

    app.wait_final(ALICE, &task_id(&first)).await;
    let listed = app.get(ALICE, &path).await;
    assert_eq!(
        ids(&listed.body),
        vec![task_id(&first)],
        "only one task was created"
    );
}

#[tokio::test]
async fn idempotent_single_create_runs_once_and_a_concurrent_duplicate_is_409() {
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            latency_ms: 1_500,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let body = json!({"name": "Ada", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"});

    // Two identical requests at once: one runs, the other is told it is in progress.
    let (a, b) = tokio::join!(
        app.post_idempotent(ALICE, "/beneficiaries", "create-ada", &body),
        app.post_idempotent(ALICE, "/beneficiaries", "create-ada", &body),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", a.body, b.body);
    let conflict = if a.status == 409 { &a } else { &b };
    assert_eq!(
        conflict.body["error"]["code"],
        "idempotency_request_in_progress"
    );

    // Afterwards the same request replays the creation.
    let created = if a.status == 201 { &a } else { &b };
    let replay = app
        .post_idempotent(ALICE, "/beneficiaries", "create-ada", &body)
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body["id"], created.body["id"]);
    assert_eq!(app.bos_stats().await.creations, 1);
}

#[tokio::test]
async fn cancellation_stops_items_not_started_and_finishes_cancelled() {
    // Given a slow BOS and small chunks, so most of the task has not started when cancelled
    let app = spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            latency_ms: 100,
            ..Default::default()
        },
        extra_env: vec![("CHUNK_SIZE", "5".into())],
        parameters: vec![
            ("BosMaxConcurrentCalls", "2".into()),
            ("ConsumerMaxConcurrency", "2".into()),
        ],
        ..Default::default()
    })
    .await;
    let id = task_id(&app.import(ALICE, &beneficiaries(200)).await);

    // When alice cancels it
    let cancel = app.delete(ALICE, &format!("/tasks/{IMPORT}/{id}")).await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    assert!(cancel.body["cancel_requested_at"].is_string());
    assert_eq!(
        app.delete(ALICE, &format!("/tasks/{IMPORT}/{id}"))
            .await
            .status,
        202,
        "repeatable"
    );

    // Then it ends cancelled, every item final, nothing created beyond what succeeded
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    let p = &task["progress"];
    assert_eq!(p["processed"], 200);
    let (succeeded, cancelled) = (
        p["succeeded"].as_u64().unwrap(),
        p["cancelled"].as_u64().unwrap(),
    );
    assert_eq!(succeeded + cancelled, 200);
    assert!(cancelled > 0);
    assert_eq!(app.bos_stats().await.creations, succeeded);
    let result = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{id}/result?limit=1000"))
        .await;
    let statuses: Vec<&str> = result.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 200);
    assert_eq!(
        statuses.iter().filter(|s| **s == "cancelled").count() as u64,
        cancelled
    );

    // A final task cannot be cancelled; another caller's task is not found
    let again = app.delete(ALICE, &format!("/tasks/{IMPORT}/{id}")).await;
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (409, Some("task_already_final"))
    );
    let bobs = app.delete(BOB, &format!("/tasks/{IMPORT}/{id}")).await;
    assert_eq!(
        (bobs.status, bobs.body["error"]["code"].as_str()),
        (404, Some("task_not_found"))
    );
}

#[tokio::test]
async fn expired_tasks_are_hidden_before_ttl_deletion() {
    let app = spawn_app().await;
    let id = task_id(&app.import(ALICE, &beneficiaries(1)).await);
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed");

    // Finished tasks carry a TTL about 30 days out (retention).
    let key = std::collections::HashMap::from([
        (
            "pk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TASK#{id}")),
        ),
        (
            "sk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("TASK".into()),
        ),
    ]);
    let stored = app
        .ddb
        .get_item()
        .table_name(app.table())
        .set_key(Some(key.clone()))
        .send()
        .await
        .unwrap();
    let expires: i64 = stored.item().unwrap()["expires_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (29 * 86_400..=31 * 86_400).contains(&(expires - now)),
        "{}",
        expires - now
    );

    // When its TTL passes (DynamoDB deletes lazily, so the record is still there)
    app.ddb
        .update_item()
        .table_name(app.table())
        .set_key(Some(key))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N((now - 1).to_string()),
        )
        .send()
        .await
        .unwrap();

    // Then every read treats it as gone
    for path in ["", "/errors", "/result"] {
        let a = app.get(ALICE, &format!("/tasks/{IMPORT}/{id}{path}")).await;
        assert_eq!(a.status, 404, "{path}");
    }
    assert!(ids(&app.get(ALICE, &format!("/tasks/{IMPORT}")).await.body).is_empty());
}

#[tokio::test]
async fn validation_task_checks_every_item_and_creates_nothing() {
    let app = spawn_app().await;
    let mut items = beneficiaries(3);
    items[1]["iban"] = json!(bos_simulator::EXISTING_IBAN);
    let answer = app
        .post_json(ALICE, &format!("/tasks/{VALIDATION}"), &items)
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["task_type"], VALIDATION);
    let id = task_id(&answer);

    let task = app.wait_task(ALICE, VALIDATION, &id).await;
    assert_eq!(task["status"], "completed_with_errors");
    let result = app
        .get(ALICE, &format!("/tasks/{VALIDATION}/{id}/result"))
        .await;
    let results = result.body["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"index": 0, "external_id": "ext-0", "status": "succeeded", "verdict": {"valid": true}})
    );
    assert_eq!(results[1]["error"]["code"], "duplicate_beneficiary");
    let stats = app.bos_stats().await;
    assert_eq!((stats.creations, stats.validations), (0, 3));

    // A validation task is not an import task.
    assert_eq!(
        app.get(ALICE, &format!("/tasks/{IMPORT}/{id}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn limits_and_bad_input_are_clear_4xx() {
    let app = spawn_app_with(AppOptions {
        extra_env: vec![("MAX_ITEMS", "5".into()), ("MAX_BODY_BYTES", "4000".into())],
        ..Default::default()
    })
    .await;
    let path = format!("/tasks/{IMPORT}");

    let too_many = app.import(ALICE, &beneficiaries(6)).await;
    assert_eq!(
        (too_many.status, too_many.body["error"]["code"].as_str()),
        (413, Some("too_many_items"))
    );

    let mut padded = beneficiaries(1);
    padded[0]["name"] = json!("x".repeat(5000));
    let too_big = app.import(ALICE, &padded).await;
    assert_eq!(
        (too_big.status, too_big.body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    let mut dup = beneficiaries(2);
    dup[1]["external_id"] = json!("ext-0");
    let d = app.import(ALICE, &dup).await;
    assert_eq!(d.status, 422);
    assert_eq!(
        d.body["error"]["details"][0]["code"],
        "duplicate_external_id"
    );
    assert_eq!(d.body["error"]["details"][0]["index"], 1);

    // Bigger than Lambda accepts: refused at the gateway, as in AWS.
    let huge = "[".to_owned() + &"1,".repeat(3_500_000) + "1]";
    let h = app
        .send(
            app.http
                .post(format!("{}{path}", app.base))
                .bearer_auth(ALICE)
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    assert_eq!(h.status, 413);

    let not_json_type = app
        .send(
            app.http
                .post(format!("{}{path}", app.base))
                .bearer_auth(ALICE)
                .header("content-type", "text/plain")
                .body("[]"),
        )
        .await;
    assert_eq!(not_json_type.status, 415);
    let wrong_method = app
        .send(
            app.http
                .patch(format!("{}{path}", app.base))
                .bearer_auth(ALICE),
        )
        .await;
    assert_eq!(
        wrong_method.status, 404,
        "routes the template does not declare are API Gateway 404s"
    );
    assert_eq!(app.table_item_kinds().await, Default::default());
}
