//! The API Gateway events checked into `events/` (the ones the README feeds to
//! `cargo lambda invoke`) go through the real handler, with in-memory adapters.

use api::App;
use lambda_http::Body;
use std::sync::Arc;
use tasks_core::chunk::WorkMessage;
use tasks_core::config::Settings;
use tasks_core::memory::{
    MemoryBackend, MemoryDeliveryQueue, MemoryLanes, MemoryQueue, MemoryStore,
};
use tasks_core::paging::PageTokens;

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&text).expect("a valid API Gateway v2 event")
}

fn app() -> (App, Arc<MemoryQueue>, Arc<MemoryBackend>) {
    let queue = Arc::new(MemoryQueue::default());
    let backend = Arc::new(MemoryBackend::default());
    let settings = Settings::default();
    let store = Arc::new(MemoryStore::default());
    let app = App::new(
        store,
        api::Ports {
            lanes: Arc::new(MemoryLanes::default()),
            queue: queue.clone(),
            backend: backend.clone(),
            delivery_queue: Arc::new(MemoryDeliveryQueue::default()),
            files: Arc::new(tasks_core::memory::MemoryFiles::default()),
            ingest: Arc::new(tasks_core::memory::MemoryIngestQueue::default()),
            console: Default::default(),
        },
        settings,
        PageTokens::new(b"test-page-token-key"),
    );
    (app, queue, backend)
}

fn json(body: &Body) -> serde_json::Value {
    serde_json::from_slice(body.as_ref()).expect("JSON body")
}

#[tokio::test]
async fn sample_import_event_is_accepted_and_enqueued() {
    let (app, queue, _) = app();
    let res = app.handle(event("api-post-import.json")).await;
    assert_eq!(res.status(), 202);
    let body = json(res.body());
    assert_eq!(body["progress"]["total"], 3);
    // One chunk: one lane opened, by a start message.
    let sent = queue.sent();
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0], WorkMessage::Start { .. }));
}

#[tokio::test]
async fn sample_single_create_event_creates_one() {
    let (app, _, backend) = app();
    let res = app.handle(event("api-post-beneficiary.json")).await;
    assert_eq!(res.status(), 201);
    assert_eq!(json(res.body())["iban"], "GB82WEST12345698765432");
    assert_eq!(backend.creations(), 1);
}

#[tokio::test]
async fn sample_get_event_for_an_unknown_task_is_404() {
    let (app, _, _) = app();
    let res = app.handle(event("api-get-task.json")).await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(res.body())["error"]["code"], "task_not_found");
}

#[tokio::test]
async fn identity_comes_only_from_the_authorizer_claims() {
    let (app, _, _) = app();
    // Without the authorizer context, a client-set header is not an identity.
    let text = std::fs::read_to_string(format!(
        "{}/../../events/api-post-import.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["requestContext"]["authorizer"] = serde_json::Value::Null;
    v["headers"]["x-user-id"] = "alice".into();
    let stripped = lambda_http::request::from_str(&v.to_string()).unwrap();
    let res = app.handle(stripped).await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res.body())["error"]["code"], "unauthenticated");
    // The untouched event, with its authorizer claims, is accepted.
    assert_eq!(
        app.handle(event("api-post-import.json")).await.status(),
        202
    );
}
