//! Webhook endpoints through the local stack: registration with its SSRF checks, ownership,
//! listing, secret rotation, deletion, idempotency keys, and secrets kept out of the logs.

use integration_tests::*;
use serde_json::{json, Value};

const RECEIVER: &str = "http://127.0.0.1:9/hooks";

fn id(a: &Answer) -> String {
    a.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", a.body))
        .to_owned()
}

fn secret(a: &Answer) -> String {
    a.body["secret"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_endpoint_is_registered_read_rotated_and_deleted_by_its_owner_only() {
    // Given alice registers an endpoint for failures only
    let app = spawn_app().await;
    let body = json!({"url": RECEIVER, "event_types": ["task.failed"], "description": "ops"});
    let created = app.post_json(ALICE, "/webhook-endpoints", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let endpoint = id(&created);
    let first_secret = secret(&created);
    assert!(first_secret.starts_with("whsec_"), "{}", created.body);
    assert_eq!(
        created.headers["location"],
        format!("/webhook-endpoints/{endpoint}").as_str()
    );
    assert_eq!(created.body["event_types"], json!(["task.failed"]));
    assert_eq!(created.body["status"], "enabled");

    // Then reads show it without its secret, and to alice only
    let path = format!("/webhook-endpoints/{endpoint}");
    let read = app.get(ALICE, &path).await;
    assert_eq!(read.status, 200);
    assert!(read.body.get("secret").is_none(), "{}", read.body);
    let listed = app.get(ALICE, "/webhook-endpoints").await;
    assert_eq!(listed.body["webhook_endpoints"][0]["id"], endpoint.as_str());
    assert!(!listed.body.to_string().contains("whsec_"));
    for answer in [
        app.get(BOB, &path).await,
        app.delete(BOB, &path).await,
        app.post_json(BOB, &format!("{path}/rotate-secret"), &json!({}))
            .await,
    ] {
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert_eq!(answer.body["error"]["code"], "webhook_endpoint_not_found");
    }
    assert_eq!(
        app.get(BOB, "/webhook-endpoints").await.body["webhook_endpoints"],
        json!([])
    );

    // When alice rotates the secret, she gets a new one
    let rotated = app
        .post_json(ALICE, &format!("{path}/rotate-secret"), &json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert!(secret(&rotated).starts_with("whsec_"));
    assert_ne!(secret(&rotated), first_secret);

    // And when she deletes it, it is gone
    let deleted = app.delete(ALICE, &path).await;
    assert_eq!(deleted.body, json!({"id": endpoint, "deleted": true}));
    assert_eq!(app.get(ALICE, &path).await.status, 404);

    // And no secret was ever logged
    let logs = app.function_logs();
    assert!(!logs.contains(&first_secret) && !logs.contains("whsec_"));
}

#[tokio::test]
async fn urls_that_could_reach_our_network_are_refused_at_registration() {
    let app = spawn_app().await;
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/",
            "forbidden_address",
        ),
        ("http://10.0.0.1/hooks", "forbidden_address"),
        ("http://192.168.1.10/hooks", "forbidden_address"),
        ("http://[fc00::1]/hooks", "forbidden_address"),
        ("http://[fe80::1]/hooks", "forbidden_address"),
        ("http://[::ffff:10.0.0.1]/hooks", "forbidden_address"),
        ("http://0.0.0.0/hooks", "forbidden_address"),
        ("http://224.0.0.1/hooks", "forbidden_address"),
        ("https://no-such-host.invalid/hooks", "unresolvable_host"),
        ("ftp://127.0.0.1/hooks", "url_not_https"),
        ("http://user:pw@127.0.0.1/hooks", "url_has_credentials"),
        ("not a url", "malformed_url"),
    ];
    for (url, code) in cases {
        let a = app
            .post_json(ALICE, "/webhook-endpoints", &json!({ "url": url }))
            .await;
        assert_eq!(a.status, 422, "{url}: {}", a.body);
        assert_eq!(a.body["error"]["details"][0]["field"], "url", "{url}");
        assert_eq!(a.body["error"]["details"][0]["code"], code, "{url}");
    }
    assert_eq!(
        app.get(ALICE, "/webhook-endpoints").await.body["webhook_endpoints"],
        json!([]),
        "nothing was registered"
    );
}

#[tokio::test]
async fn registration_honours_idempotency_keys_and_a_per_caller_cap() {
    let app = spawn_app().await;
    let body = json!({ "url": RECEIVER });
    let first = app
        .post_idempotent(ALICE, "/webhook-endpoints", "hook-1", &body)
        .await;
    let again = app
        .post_idempotent(ALICE, "/webhook-endpoints", "hook-1", &body)
        .await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(again.body, first.body, "the same endpoint and secret");
    assert_eq!(again.headers["idempotent-replayed"], "true");

    for n in 2..=16 {
        let a = app.post_json(ALICE, "/webhook-endpoints", &body).await;
        assert_eq!(a.status, 201, "endpoint {n}: {}", a.body);
    }
    let over = app.post_json(ALICE, "/webhook-endpoints", &body).await;
    assert_eq!(over.status, 422);
    assert_eq!(over.body["error"]["code"], "too_many_webhook_endpoints");

    // The listing pages through all 16, newest first.
    let page: Value = app.get(ALICE, "/webhook-endpoints?limit=10").await.body;
    let token = page["next_page_token"].as_str().expect("a second page");
    let rest = app
        .get(
            ALICE,
            &format!("/webhook-endpoints?limit=10&page_token={token}"),
        )
        .await;
    let count = |p: &Value| p["webhook_endpoints"].as_array().map_or(0, Vec::len);
    assert_eq!((count(&page), count(&rest.body)), (10, 6));
    assert!(rest.body["next_page_token"].is_null());
    let bobs = app
        .get(BOB, &format!("/webhook-endpoints?page_token={token}"))
        .await;
    assert_eq!(bobs.status, 400, "another caller's page token");
}

/// A receiver status meaning "answer nothing in time".
const HANG: u16 = 0;

/// A webhook receiver on a loopback port: answers each request with the next of `statuses`
/// (then the last again; [`HANG`] for no answer in time), and keeps what it got.
struct Receiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Self {
        use axum::extract::State;
        type Shared = (
            std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
            std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
        );
        async fn hook(
            State((got, statuses)): State<Shared>,
            headers: axum::http::HeaderMap,
            body: String,
        ) -> axum::http::StatusCode {
            got.lock().unwrap().push((headers, body));
            let status = {
                let mut s = statuses.lock().unwrap();
                if s.len() > 1 {
                    s.remove(0)
                } else {
                    s[0]
                }
            };
            if status == HANG {
                // Longer than any attempt's time-out in these tests.
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                return axum::http::StatusCode::OK;
            }
            axum::http::StatusCode::from_u16(status).unwrap()
        }
        let got = std::sync::Arc::default();
        let shared: Shared = (
            std::sync::Arc::clone(&got),
            std::sync::Arc::new(std::sync::Mutex::new(statuses.to_vec())),
        );
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(hook))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, got }
    }

    fn received(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<(axum::http::HeaderMap, String)> {
        eventually(|| async { Some(self.received()).filter(|r| r.len() >= n) })
            .await
            .unwrap_or_else(|| panic!("the receiver got {} of {n} requests", self.received().len()))
    }
}

#[tokio::test]
async fn a_finished_task_is_pushed_signed_with_the_task_as_get_shows_it() {
    // Given alice's endpoint
    let app = spawn_app().await;
    let receiver = Receiver::start(&[204]).await;
    let created = app
        .post_json(ALICE, "/webhook-endpoints", &json!({ "url": receiver.url }))
        .await;
    let secret = secret(&created);

    // When her import finishes
    let task = app.import(ALICE, &beneficiaries(3)).await;
    let task_id = task.body["task_id"].as_str().unwrap().to_owned();
    let finished = app.wait_final(ALICE, &task_id).await;

    // Then one signed event arrives, verified by an independent implementation
    let got = receiver.wait_for(1).await;
    let (headers, body) = &got[0];
    let verifier = standardwebhooks::Webhook::new(&secret).expect("a whsec_ secret");
    verifier
        .verify(body.as_bytes(), headers)
        .expect("the signature verifies with standardwebhooks");
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["type"], "task.completed");
    assert_eq!(event["id"], headers["webhook-id"].to_str().unwrap());
    assert_eq!(
        event["data"], finished,
        "the task exactly as GET returns it"
    );
    // It carries no beneficiary data
    for word in ["Payee", "iban", "DE"] {
        assert!(!event.to_string().contains(&format!("\"{word}")), "{word}");
    }
    // And a wrong secret does not verify it
    let other = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(other.verify(body.as_bytes(), headers).is_err());
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_same_event_three_times() {
    let app = spawn_app().await;
    let receiver = Receiver::start(&[500, 503, 200]).await;
    app.post_json(ALICE, "/webhook-endpoints", &json!({ "url": receiver.url }))
        .await;
    let task = app.import(ALICE, &beneficiaries(2)).await;
    app.wait_final(ALICE, task.body["task_id"].as_str().unwrap())
        .await;

    let got = receiver.wait_for(3).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one event id: {ids:?}");
    assert!(
        got.iter().all(|(_, body)| body == &got[0].1),
        "the same body"
    );

    // And the log holds one success after two failures, newest first
    let endpoint = app.get(ALICE, "/webhook-endpoints").await.body["webhook_endpoints"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delivery = settled(&app, &endpoint).await;
    assert_eq!(delivery["status"], "succeeded");
    let statuses: Vec<&Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(200), &json!(503), &json!(500)]);
    assert_eq!(delivery["event_id"], ids[0]);
}

/// The endpoint's only delivery once it is no longer pending (bounded wait).
async fn settled(app: &TestApp, endpoint: &str) -> Value {
    let path = format!("/webhook-endpoints/{endpoint}/deliveries");
    eventually(|| async {
        let log = app.get(ALICE, &path).await;
        assert_eq!(log.status, 200, "{}", log.body);
        let first = log.body["deliveries"][0].clone();
        (first["status"] == "succeeded" || first["status"] == "failed").then_some(first)
    })
    .await
    .expect("the delivery settled")
}

#[tokio::test]
async fn a_receiver_that_never_answers_ends_failed_and_a_manual_retry_sends_it_again() {
    // Given a receiver that never answers in time (attempts time out after 200 ms, and the
    // schedule runs 10,000 times faster), then answers the ninth request
    let app = spawn_app_with(AppOptions {
        extra_env: vec![
            ("WEBHOOK_ATTEMPT_TIMEOUT_MS", "200".into()),
            ("WEBHOOK_SCHEDULE_SCALE", "0.0001".into()),
        ],
        ..Default::default()
    })
    .await;
    let mut statuses = vec![HANG; 8];
    statuses.push(204);
    let receiver = Receiver::start(&statuses).await;
    let created = app
        .post_json(ALICE, "/webhook-endpoints", &json!({ "url": receiver.url }))
        .await;
    let endpoint = id(&created);
    let task = app.import(ALICE, &beneficiaries(1)).await;
    app.wait_final(ALICE, task.body["task_id"].as_str().unwrap())
        .await;

    // When every scheduled attempt has timed out
    let failed = settled(&app, &endpoint).await;

    // Then the delivery is failed, with eight timed-out attempts in its log
    assert_eq!(failed["status"], "failed", "{failed}");
    let attempts = failed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 8);
    assert!(attempts
        .iter()
        .all(|a| a["error"] == "timeout" && a["status"].is_null()));
    // Another caller sees neither the log nor can retry
    let log_path = format!("/webhook-endpoints/{endpoint}/deliveries");
    assert_eq!(app.get(BOB, &log_path).await.status, 404);
    let retry_path = format!("{log_path}/{}/retry", failed["id"].as_str().unwrap());
    assert_eq!(
        app.post_json(BOB, &retry_path, &json!({})).await.status,
        404
    );

    // When alice retries it by hand, it is sent again at once and succeeds
    let retried = app.post_json(ALICE, &retry_path, &json!({})).await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    receiver.wait_for(9).await;
    let done = settled(&app, &endpoint).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["attempts"][0]["status"], 204);
    assert_eq!(done["attempts"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    let app = spawn_app().await;
    let receiver = Receiver::start(&[200]).await;
    let created = app
        .post_json(ALICE, "/webhook-endpoints", &json!({ "url": receiver.url }))
        .await;
    let old = secret(&created);
    let rotated = app
        .post_json(
            ALICE,
            &format!("/webhook-endpoints/{}/rotate-secret", id(&created)),
            &json!({}),
        )
        .await;
    let new = secret(&rotated);
    let task = app.import(ALICE, &beneficiaries(1)).await;
    app.wait_final(ALICE, task.body["task_id"].as_str().unwrap())
        .await;

    let got = receiver.wait_for(1).await;
    let (headers, body) = &got[0];
    for s in [&old, &new] {
        let verifier = standardwebhooks::Webhook::new(s).unwrap();
        verifier
            .verify(body.as_bytes(), headers)
            .expect("both secrets verify during the overlap");
    }
    assert_eq!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
}
