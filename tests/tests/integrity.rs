//! Never an outcome that did not happen, and no input that costs more than it should: each
//! test here is one finding of the adversarial run behind issue 9, replayed through the local
//! stack (a misbehaving BOS simulator, raw HTTP where a client library would tidy the request).

use bos_simulator::Misbehaviour;
use integration_tests::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_bos(misbehave: Misbehaviour) -> AppOptions {
    AppOptions {
        knobs: bos_simulator::Knobs {
            misbehave,
            ..Default::default()
        },
        // A bad answer is retried by redelivery, then settled: keep the detour short.
        parameters: vec![("MaxReceiveCount", "2".into())],
        ..Default::default()
    }
}

fn ada() -> Value {
    json!({"name": "Ada Lovelace", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"})
}

/// Every item of a finished task failed with `code`.
async fn all_failed_with(app: &TestApp, task_type: &str, id: &str, code: &str) {
    let task = app.wait_task(ALICE, task_type, id).await;
    assert_eq!(task["progress"]["succeeded"], 0, "{task}");
    let errors = app
        .get(ALICE, &format!("/tasks/{task_type}/{id}/errors"))
        .await;
    let errors = errors.body["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        errors.len() as u64,
        task["progress"]["total"].as_u64().unwrap_or(0)
    );
    assert!(errors.iter().all(|e| e["code"] == code), "{errors:?}");
}

#[tokio::test]
async fn a_redirect_from_bos_is_an_upstream_error_never_a_success() {
    let app = spawn_app_with(with_bos(Misbehaviour::Redirect)).await;

    let sync = app.post_json(ALICE, "/beneficiaries", &ada()).await;
    assert_eq!(
        (sync.status, sync.body["error"]["code"].as_str()),
        (502, Some("upstream_error"))
    );

    let a = app.import(ALICE, &beneficiaries(3)).await;
    let id = a.body["task_id"].as_str().unwrap().to_owned();
    all_failed_with(&app, IMPORT, &id, "upstream_error").await;
    assert_eq!(app.bos_stats().await.creations, 0);
}

#[tokio::test]
async fn another_persons_beneficiary_in_a_success_answer_is_an_upstream_error() {
    let app = spawn_app_with(with_bos(Misbehaviour::OtherBeneficiary)).await;

    let sync = app.post_json(ALICE, "/beneficiaries", &ada()).await;
    assert_eq!(sync.status, 502, "{}", sync.body);

    let a = app.import(ALICE, &beneficiaries(2)).await;
    let id = a.body["task_id"].as_str().unwrap().to_owned();
    all_failed_with(&app, IMPORT, &id, "upstream_error").await;
}

#[tokio::test]
async fn a_validation_task_fails_closed_on_a_non_json_answer() {
    let app = spawn_app_with(with_bos(Misbehaviour::NotJson)).await;
    let a = app
        .post_json(ALICE, "/tasks/beneficiaries-validation", &beneficiaries(2))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a.body["task_id"].as_str().unwrap().to_owned();
    all_failed_with(&app, "beneficiaries-validation", &id, "upstream_error").await;
}

/// Sends `path` byte for byte (an HTTP client library would resolve dot segments itself) and
/// returns the status. Async: the local gateway runs on this test's runtime.
async fn raw_get(app: &TestApp, path: &str) -> u16 {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ALICE}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn paths_with_dot_segments_or_encoded_slashes_are_404() {
    let app = spawn_app().await;
    assert_eq!(raw_get(&app, "/tasks/beneficiaries-import").await, 200);
    for path in [
        "/tasks/./beneficiaries-import",
        "/tasks/../beneficiaries",
        "/tasks/%2e%2e/beneficiaries",
        "/tasks/beneficiaries-import%2Fx",
    ] {
        assert_eq!(raw_get(&app, path).await, 404, "{path}");
    }
}

#[tokio::test]
async fn bad_input_rules_have_stable_codes() {
    let app = spawn_app().await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            br#"{"name": "Ada", "name": "Eve", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"}"#.to_vec(),
            400,
            "duplicate_json_key",
        ),
        (
            serde_json::to_vec(&json!({"name": "Ada", "email": "Ada <ada@example.com>", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"})).unwrap(),
            422,
            "invalid_email",
        ),
        (
            serde_json::to_vec(&json!({"name": "\u{200B}\u{200B}", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"})).unwrap(),
            422,
            "invalid_characters",
        ),
        (
            serde_json::to_vec(&json!({"name": "Ada \u{202E}ecalevoL", "country": "GB", "currency": "GBP", "iban": "GB82WEST12345698765432"})).unwrap(),
            422,
            "invalid_characters",
        ),
    ];
    for (body, status, code) in cases {
        let a = app
            .send(
                app.http
                    .post(format!("{}/beneficiaries", app.base))
                    .bearer_auth(ALICE)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(a.status, status, "{}", a.body);
        let got = if status == 400 {
            a.body["error"]["code"].clone()
        } else {
            a.body["error"]["details"][0]["code"].clone()
        };
        assert_eq!(got, code, "{}", a.body);
    }
    assert_eq!(app.bos_stats().await.requests, 0, "nothing reached BOS");
}

#[tokio::test]
async fn a_huge_invalid_batch_gets_a_bounded_422_that_replays() {
    // Given 300 items, each wrong everywhere, with a 4,000-character external_id and unknown key
    let app = spawn_app().await;
    let long = "x".repeat(4_000);
    let mut item = json!({"name": "", "country": "??", "currency": "??", "iban": "XX00",
        "email": "?", "external_id": long.clone()});
    item[long.as_str()] = json!(true);
    let body = json!(vec![item; 300]);

    // When it is posted twice with the same Idempotency-Key
    let first = app
        .post_idempotent(ALICE, &format!("/tasks/{IMPORT}"), "huge-422", &body)
        .await;
    let again = app
        .post_idempotent(ALICE, &format!("/tasks/{IMPORT}"), "huge-422", &body)
        .await;

    // Then the 422 is bounded (no client string repeated in full) and is replayed as stored
    assert_eq!(first.status, 422, "{}", first.body);
    let size = serde_json::to_vec(&first.body).unwrap().len();
    assert!(size <= 210_000, "{size} bytes");
    assert!(!first.body.to_string().contains(&long));
    assert_eq!(again.status, 422, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
}

#[tokio::test]
async fn every_body_up_to_the_documented_limit_reaches_the_function() {
    let app = spawn_app().await;
    let post = |body: Vec<u8>| {
        app.send(
            app.http
                .post(format!("{}/tasks/{IMPORT}", app.base))
                .bearer_auth(ALICE)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    // All tabs, each of which doubles when escaped into the Lambda event: still the
    // function's own answer (not JSON), not the gateway's 413
    let at_limit = post(vec![b'\t'; 3_000_000]).await;
    assert_eq!(
        (at_limit.status, at_limit.body["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{}",
        at_limit.body
    );
    // One byte more is the function's documented 413
    let over = post(vec![b'\t'; 3_000_001]).await;
    assert_eq!(
        (over.status, over.body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{}",
        over.body
    );
}
