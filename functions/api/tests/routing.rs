//! The route table, through the real handler: each path reaches its handler or the router's
//! own refusal, in the documented order (caller, path, parameters, Idempotency-Key).

use api::App;
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::memory::{
    MemoryBackend, MemoryDeliveryQueue, MemoryLanes, MemoryQueue, MemoryStore,
};
use tasks_core::paging::PageTokens;

const ID: &str = "7b0a3f3e-1f7a-4c39-9d9e-3c5a8f3b2a10";

fn app() -> App {
    App::new(
        Arc::new(MemoryStore::default()),
        api::Ports {
            lanes: Arc::new(MemoryLanes::default()),
            queue: Arc::new(MemoryQueue::default()),
            backend: Arc::new(MemoryBackend::default()),
            delivery_queue: Arc::new(MemoryDeliveryQueue::default()),
            files: Arc::new(tasks_core::memory::MemoryFiles::default()),
            ingest: Arc::new(tasks_core::memory::MemoryIngestQueue::default()),
            console: Default::default(),
        },
        Settings::default(),
        PageTokens::new(b"test-page-token-key"),
    )
}

/// A request as API Gateway hands it over, from a caller the authorizer let in.
fn request(method: &str, path: &str, idempotency_key: Option<&str>) -> lambda_http::Request {
    let mut event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "localhost",
            "domainPrefix": "localhost", "requestId": "r", "routeKey": "$default",
            "stage": "$default", "time": "03/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"},
            "authorizer": {"jwt": {"claims": {"sub": "alice"}, "scopes": null}}
        },
        "body": "{}", "isBase64Encoded": false
    });
    if let Some(key) = idempotency_key {
        event["headers"]["idempotency-key"] = key.into();
    }
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event")
}

/// The error code of an answer, or "ok" for a 2xx.
async fn code(app: &App, req: lambda_http::Request) -> String {
    let res = app.handle(req).await;
    if res.status().is_success() {
        return "ok".into();
    }
    let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
    body["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_path_reaches_its_handler_or_the_right_refusal() {
    let app = app();
    let cases = [
        // A handler ran: its own answer, not the router's.
        ("GET", "/tasks/beneficiaries-import".to_owned(), "ok"),
        ("GET", "/webhook-endpoints".to_owned(), "ok"),
        ("POST", "/beneficiaries".to_owned(), "validation_failed"),
        (
            "POST",
            "/tasks/beneficiaries-import".to_owned(),
            "invalid_body",
        ),
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}"),
            "task_not_found",
        ),
        (
            "DELETE",
            format!("/tasks/beneficiaries-validation/{ID}"),
            "task_not_found",
        ),
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}/errors"),
            "task_not_found",
        ),
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}/result"),
            "task_not_found",
        ),
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}/errors.csv"),
            "task_not_found",
        ),
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}/result.csv"),
            "task_not_found",
        ),
        (
            "POST",
            format!("/tasks/beneficiaries-import/{ID}/retry"),
            "task_not_found",
        ),
        (
            "GET",
            format!("/webhook-endpoints/{ID}"),
            "webhook_endpoint_not_found",
        ),
        (
            "DELETE",
            format!("/webhook-endpoints/{ID}"),
            "webhook_endpoint_not_found",
        ),
        (
            "POST",
            format!("/webhook-endpoints/{ID}/rotate-secret"),
            "webhook_endpoint_not_found",
        ),
        (
            "GET",
            format!("/webhook-endpoints/{ID}/deliveries"),
            "webhook_endpoint_not_found",
        ),
        (
            "POST",
            format!("/webhook-endpoints/{ID}/deliveries/d/retry"),
            "webhook_endpoint_not_found",
        ),
        // The router's refusals.
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}/retry"),
            "method_not_allowed",
        ),
        ("PUT", "/tasks/nope".to_owned(), "method_not_allowed"),
        ("GET", "/beneficiaries".to_owned(), "method_not_allowed"),
        (
            "PUT",
            format!("/webhook-endpoints/{ID}"),
            "method_not_allowed",
        ),
        ("GET", "/tasks".to_owned(), "route_not_found"),
        (
            "GET",
            "/tasks/beneficiaries-import%2Fx".to_owned(),
            "route_not_found",
        ),
        (
            "GET",
            format!("/tasks/beneficiaries-import/{ID}/other"),
            "route_not_found",
        ),
        // Parameters that name nothing.
        ("GET", "/tasks/nope".to_owned(), "unknown_task_type"),
        ("GET", "/tasks/nope/42".to_owned(), "unknown_task_type"),
        (
            "GET",
            "/tasks/beneficiaries-import/42".to_owned(),
            "task_not_found",
        ),
        (
            "GET",
            "/webhook-endpoints/x".to_owned(),
            "webhook_endpoint_not_found",
        ),
    ];
    for (method, path, expected) in cases {
        let got = code(&app, request(method, &path, None)).await;
        assert_eq!(got, expected, "{method} {path}");
    }
}

#[tokio::test]
async fn dot_segments_are_not_resolved_but_refused() {
    // lambda_http resolves them when it reads an event; a request built otherwise (the
    // gateway's own check aside) must still not reach `/beneficiaries`.
    let app = app();
    let mut req = request("GET", "/tasks", None);
    *req.uri_mut() = "/tasks/../beneficiaries".parse().unwrap();
    assert_eq!(code(&app, req).await, "route_not_found");
}

#[tokio::test]
async fn a_path_that_names_nothing_is_refused_before_the_idempotency_key_is_read() {
    let app = app();
    let bad_key = Some("not a valid key: it has spaces");
    let unknown_type = request("POST", "/tasks/nope", bad_key);
    assert_eq!(code(&app, unknown_type).await, "unknown_task_type");
    let known_type = request("POST", "/tasks/beneficiaries-import", bad_key);
    assert_eq!(code(&app, known_type).await, "invalid_idempotency_key");
}

#[tokio::test]
async fn without_the_authorizers_subject_every_path_is_401() {
    let app = app();
    for path in ["/tasks/beneficiaries-import", "/nowhere", "/tasks/../x"] {
        let mut req = request("GET", path, None);
        req.extensions_mut()
            .remove::<lambda_http::request::RequestContext>();
        assert_eq!(code(&app, req).await, "unauthenticated", "{path}");
    }
}
