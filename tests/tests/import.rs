//! End-to-end behaviour of the bulk import through the local gateway, against DynamoDB
//! Local, moto's SQS and the BOS simulator.

use integration_tests::*;
use serde_json::json;

#[tokio::test]
async fn happy_path_creates_every_beneficiary_once() {
    // Given a running stack
    let app = spawn_app().await;

    // When alice imports three valid beneficiaries
    let answer = app.import(ALICE, &beneficiaries(3)).await;

    // Then the task is accepted at once, and completes with every item created
    assert_eq!(answer.status, 202, "{}", answer.body);
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.headers["location"],
        format!("/tasks/{IMPORT}/{task_id}").as_str()
    );
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(answer.body["status"], "queued");

    let task = app.wait_final(ALICE, &task_id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["progress"],
        json!({"total": 3, "processed": 3, "succeeded": 3, "failed": 0, "cancelled": 0,
               "not_attempted": 0, "percent": 100, "waiting_for_upstream": false})
    );
    assert!(task["finished_at"].is_string());

    let result = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{task_id}/result"))
        .await;
    assert_eq!(result.status, 200);
    let results = result.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["status"], "succeeded");
    assert_eq!(results[1]["external_id"], "ext-1");
    assert_eq!(results[1]["beneficiary"]["iban"], german_iban(2));
    assert!(results[1]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .starts_with("ben_"));
    assert_eq!(app.bos_stats().await.creations, 3);
}

#[tokio::test]
async fn bos_rejection_is_recorded_as_an_item_error() {
    let app = spawn_app().await;
    let mut items = beneficiaries(3);
    items[2]["iban"] = json!(bos_simulator::EXISTING_IBAN);
    items[2]["country"] = json!("GB");
    items[2]["currency"] = json!("GBP");

    let answer = app.import(ALICE, &items).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();

    let task = app.wait_final(ALICE, &task_id).await;
    assert_eq!(task["status"], "completed_with_errors");
    assert_eq!(task["progress"]["succeeded"], 2);
    assert_eq!(task["progress"]["failed"], 1);

    let errors = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{task_id}/errors"))
        .await;
    assert_eq!(errors.status, 200);
    assert_eq!(
        errors.body["errors"],
        json!([{"index": 2, "external_id": "ext-2", "field": "iban", "code": "duplicate_beneficiary",
                "message": "A beneficiary with this IBAN already exists."}])
    );
    let result = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{task_id}/result"))
        .await;
    assert_eq!(result.body["results"][2]["status"], "failed");
    assert_eq!(
        result.body["results"][2]["error"]["code"],
        "duplicate_beneficiary"
    );
    assert_eq!(app.bos_stats().await.creations, 2);
}

#[tokio::test]
async fn invalid_batch_is_422_with_details_and_creates_nothing() {
    let app = spawn_app().await;
    let mut items = beneficiaries(4);
    items[1]["iban"] = json!("DE00370400440532013000");
    items[3]["currency"] = json!("EURO");
    items[3]["colour"] = json!("blue");

    let answer = app.import(ALICE, &items).await;

    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "validation_failed");
    let details = answer.body["error"]["details"].as_array().unwrap();
    let found: Vec<(u64, &str, &str)> = details
        .iter()
        .map(|d| {
            (
                d["index"].as_u64().unwrap(),
                d["field"].as_str().unwrap(),
                d["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        found.contains(&(1, "iban", "invalid_checksum")),
        "{found:?}"
    );
    assert!(
        found.contains(&(3, "currency", "invalid_currency")),
        "{found:?}"
    );
    assert!(found.contains(&(3, "colour", "unknown_field")), "{found:?}");
    assert_eq!(details[0]["external_id"], "ext-1");
    assert!(
        app.table_item_kinds().await.is_empty(),
        "nothing may be stored"
    );
    assert_eq!(app.bos_stats().await.requests, 0);
}

#[tokio::test]
async fn bad_requests_get_stable_codes() {
    let app = spawn_app().await;

    let unknown = app.import(ALICE, &json!([])).await;
    assert_eq!(
        (unknown.status, unknown.body["error"]["code"].as_str()),
        (422, Some("empty_batch"))
    );

    let unknown_type = app
        .post_json(ALICE, "/tasks/payments-export", &beneficiaries(1))
        .await;
    assert_eq!(unknown_type.status, 404);
    assert_eq!(unknown_type.body["error"]["code"], "unknown_task_type");

    let malformed = app
        .send(
            app.http
                .post(format!("{}/tasks/{IMPORT}", app.base))
                .bearer_auth(ALICE)
                .header("content-type", "application/json")
                .body("[{\"name\": "),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["error"]["code"], "malformed_json");

    let not_array = app.import(ALICE, &json!({"items": []})).await;
    assert_eq!(
        (not_array.status, not_array.body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    let wrong_type = app
        .send(
            app.http
                .post(format!("{}/tasks/{IMPORT}", app.base))
                .bearer_auth(ALICE)
                .body("[]"),
        )
        .await;
    assert_eq!(wrong_type.status, 415);
    assert_eq!(wrong_type.body["error"]["code"], "unsupported_media_type");

    let bad_id = app.get(ALICE, &format!("/tasks/{IMPORT}/not-a-uuid")).await;
    assert_eq!(
        (bad_id.status, bad_id.body["error"]["code"].as_str()),
        (404, Some("task_not_found"))
    );

    let bad_limit = app
        .get(
            ALICE,
            &format!("/tasks/{IMPORT}/{}/errors?limit=0", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(
        (bad_limit.status, bad_limit.body["error"]["code"].as_str()),
        (400, Some("invalid_query_parameter"))
    );
}

#[tokio::test]
async fn callers_without_valid_credentials_are_401_before_any_function_runs() {
    let app = spawn_app().await;
    let no_token = app
        .send(
            app.http
                .post(format!("{}/tasks/{IMPORT}", app.base))
                .header("content-type", "application/json")
                .body("[]"),
        )
        .await;
    assert_eq!(no_token.status, 401);
    let wrong_token = app.import("not-a-dev-token", &beneficiaries(1)).await;
    assert_eq!(wrong_token.status, 401);
    let header_identity = app
        .send(
            app.http
                .get(format!(
                    "{}/tasks/{IMPORT}/{}",
                    app.base,
                    uuid::Uuid::new_v4()
                ))
                .header("x-user-id", "alice"),
        )
        .await;
    assert_eq!(
        header_identity.status, 401,
        "identity never comes from a client header"
    );
    assert_eq!(app.table_item_kinds().await, Default::default());
}

#[tokio::test]
async fn another_callers_task_is_not_found() {
    let app = spawn_app().await;
    let answer = app.import(ALICE, &beneficiaries(1)).await;
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();
    app.wait_final(ALICE, &task_id).await;

    for path in ["", "/errors", "/result"] {
        let a = app
            .get(BOB, &format!("/tasks/{IMPORT}/{task_id}{path}"))
            .await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "task_not_found");
    }
}

#[tokio::test]
async fn result_pages_cover_every_item_once() {
    let app = spawn_app().await;
    let answer = app.import(ALICE, &beneficiaries(7)).await;
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();
    app.wait_final(ALICE, &task_id).await;

    let mut indexes = vec![];
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut path = format!("/tasks/{IMPORT}/{task_id}/result?limit=3");
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let page = app.get(ALICE, &path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        indexes.extend(
            page.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["index"].as_u64().unwrap()),
        );
        match page.body["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(indexes, (0..7).collect::<Vec<_>>());

    // A token is bound to its listing: replayed against the errors listing it is refused.
    let first = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{task_id}/result?limit=3"))
        .await;
    let t = first.body["next_page_token"].as_str().unwrap();
    let misuse = app
        .get(
            ALICE,
            &format!("/tasks/{IMPORT}/{task_id}/errors?page_token={t}"),
        )
        .await;
    assert_eq!(
        (misuse.status, misuse.body["error"]["code"].as_str()),
        (400, Some("invalid_page_token"))
    );
}

#[tokio::test]
async fn a_thousand_items_all_end_final_and_bos_creates_each_once() {
    let app = spawn_app().await;
    let answer = app.import(ALICE, &beneficiaries(1000)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();

    let task = app.wait_final(ALICE, &task_id).await;

    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["processed"], 1000);
    assert_eq!(task["progress"]["succeeded"], 1000);
    let stats = app.bos_stats().await;
    assert_eq!(
        stats.creations, 1000,
        "BOS creations must equal succeeded: {stats:?}"
    );
    // 1 task record and 1,000 item outcomes in 32 records of up to 32; the 32 chunks (of 32
    // items) that waited for alice's lanes, one hand-off record per chunk and per lane start,
    // and alice's lane state and sequence.
    let kinds = app.table_item_kinds().await;
    assert_eq!(
        (kinds["TASK"], kinds["OUTCOMES"], kinds["CHUNK"]),
        (1, 32, 32),
        "{kinds:?}"
    );
    assert_eq!(
        (
            kinds["STATE"],
            kinds["SEG"],
            kinds["START"],
            kinds["HANDOFF"]
        ),
        (1, 1, 4, 32),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 7, "{kinds:?}");
}

#[tokio::test]
async fn synchronous_create_and_duplicate() {
    let app = spawn_app().await;
    let body = json!({"name": "Ada Lovelace", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"});
    let created = app.post_json(ALICE, "/beneficiaries", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["iban"], "GB82WEST12345698765432");

    let again = app.post_json(ALICE, "/beneficiaries", &body).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "duplicate_beneficiary");

    let unsupported = app
        .post_json(
            ALICE,
            "/beneficiaries",
            &json!({"name": "X", "country": "US", "currency": "MXN", "iban": german_iban(9)}),
        )
        .await;
    assert_eq!(
        (
            unsupported.status,
            unsupported.body["error"]["code"].as_str()
        ),
        (422, Some("rejected"))
    );
    assert_eq!(
        unsupported.body["error"]["details"][0]["code"],
        "unsupported_currency"
    );

    let invalid = app
        .post_json(ALICE, "/beneficiaries", &json!({"name": "X"}))
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.body["error"]["code"], "validation_failed");
    assert_eq!(app.bos_stats().await.creations, 1);
}

#[tokio::test]
async fn logs_carry_no_beneficiary_pii() {
    let app = spawn_app().await;
    // A webhook endpoint too, so the notifier and the sender handle this task (port 9 refuses
    // connections: the sender logs a failed attempt).
    let endpoint = app
        .post_json(
            ALICE,
            "/webhook-endpoints",
            &json!({"url": "http://127.0.0.1:9/hooks"}),
        )
        .await;
    let webhook_secret = endpoint.body["secret"].as_str().unwrap().to_owned();
    let items = json!([
        {"name": "Zebulon Quixotic-Pemberton", "country": "DE", "currency": "EUR",
         "iban": german_iban(424_242), "email": "zebulon.pemberton@example.org"},
        {"name": "Ottoline Featherstonehaugh", "country": "GB", "currency": "GBP",
         "iban": bos_simulator::EXISTING_IBAN, "email": "ottoline@example.org"}
    ]);
    let answer = app.import(ALICE, &items).await;
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();
    app.wait_final(ALICE, &task_id).await;
    app.post_json(
        ALICE,
        "/beneficiaries",
        &json!({"name": "Ottoline Featherstonehaugh", "country": "GB",
        "currency": "GBP", "iban": bos_simulator::EXISTING_IBAN}),
    )
    .await;

    let log_path = format!(
        "/webhook-endpoints/{}/deliveries",
        endpoint.body["id"].as_str().unwrap()
    );
    eventually(|| async {
        let log = app.get(ALICE, &log_path).await;
        (log.body["deliveries"][0]["attempts"]
            .as_array()
            .map_or(0, Vec::len)
            > 0)
        .then_some(())
    })
    .await
    .expect("the webhook was attempted");
    // The sender logs its line after it records the attempt: wait for the line, not the record.
    let logs = eventually(|| async {
        let logs = app.function_logs();
        logs.contains("webhook attempt recorded").then_some(logs)
    })
    .await
    .expect("the sender's logs were captured too");
    assert!(logs.contains(&task_id), "the logs were captured");
    for secret in [
        webhook_secret.as_str(),
        "whsec_",
        "Zebulon",
        "Pemberton",
        "Ottoline",
        "Featherstonehaugh",
        "example.org",
        &german_iban(424_242),
        bos_simulator::EXISTING_IBAN,
        "alice",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} appears in the function logs"
        );
    }
}

#[tokio::test]
async fn log_lines_are_json_with_request_task_and_owner_ids_and_metrics_are_emf() {
    let app = spawn_app().await;
    let id = app.import(ALICE, &beneficiaries(3)).await.body["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_final(ALICE, &id).await;

    // Every api line inside a request carries the request id and the hashed owner.
    let api = app.function_log("api");
    let mut request_lines = 0;
    for line in api.lines().filter(|l| !l.contains("\"_aws\"")) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        let Some(spans) = v["spans"].as_array() else {
            continue;
        };
        if let Some(request) = spans.iter().find(|s| s["name"] == "request") {
            request_lines += 1;
            assert!(
                request["request_id"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
                "{line}"
            );
            let owner = request["owner"].as_str().unwrap_or_default();
            assert!(
                owner.len() == 16 && owner.chars().all(|c| c.is_ascii_hexdigit()),
                "{line}"
            );
        }
    }
    assert!(request_lines > 0);
    assert!(api.contains(&id), "the task id is logged");

    // Every consumer line about a chunk carries the task id and the hashed owner.
    let consumer = app.function_log("consumer");
    let chunk_lines: Vec<serde_json::Value> = consumer
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "process_chunk"))
        })
        .collect();
    assert!(!chunk_lines.is_empty());
    for v in &chunk_lines {
        let span = v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "process_chunk")
            .unwrap();
        assert_eq!(span["task_id"], id.as_str());
    }

    // Metrics: EMF documents from the api (task created) and the consumer (items, latency).
    let emf: Vec<serde_json::Value> = format!("{api}\n{consumer}")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert!(emf
        .iter()
        .any(|d| d["TasksCreated"] == 1.0 && d["TaskType"] == IMPORT));
    assert!(emf
        .iter()
        .any(|d| d["ItemsSucceeded"] == 3.0 && d["BosLatency"].is_array()));
    assert!(emf
        .iter()
        .any(|d| d["TasksFinished"] == 1.0 && d["Status"] == "completed"));
}
