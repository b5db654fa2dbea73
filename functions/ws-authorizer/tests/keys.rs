//! Fetching the issuer's keys, against a key server on loopback whose keys can change.

use axum::extract::State;
use axum::routing::get;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ws_authorizer::keys::IssuerKeys;

/// What the key server serves (None: 500), and how many times it was asked.
#[derive(Default)]
struct KeyServer {
    body: Mutex<Option<String>>,
    fetches: AtomicUsize,
}

fn key_set(kid: &str) -> String {
    let set: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/test-only-jwks.json")).unwrap();
    let mut key = set["keys"][0].clone();
    key["kid"] = kid.into();
    serde_json::json!({"keys": [key]}).to_string()
}

async fn serve(server: Arc<KeyServer>) -> String {
    async fn jwks(State(s): State<Arc<KeyServer>>) -> Result<String, axum::http::StatusCode> {
        s.fetches.fetch_add(1, Ordering::SeqCst);
        let body = s.body.lock().unwrap().clone();
        body.ok_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
    let app = axum::Router::new()
        .route("/jwks.json", get(jwks))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn kids(keys: Option<Arc<jsonwebtoken::jwk::JwkSet>>) -> Vec<String> {
    keys.map(|k| {
        k.keys
            .iter()
            .filter_map(|j| j.common.key_id.clone())
            .collect()
    })
    .unwrap_or_default()
}

#[tokio::test]
async fn keys_are_fetched_once_then_again_after_a_rotation() {
    let server = Arc::new(KeyServer::default());
    *server.body.lock().unwrap() = Some(key_set("old"));
    let url = serve(Arc::clone(&server)).await;
    let keys = IssuerKeys::refetching_after(url, Duration::ZERO);
    assert_eq!(kids(keys.current().await), ["old"]);
    assert_eq!(kids(keys.current().await), ["old"]);
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
    *server.body.lock().unwrap() = Some(key_set("new"));
    assert_eq!(kids(keys.refresh().await), ["new"]);
    // A failing issuer leaves the keys as they were.
    *server.body.lock().unwrap() = None;
    assert_eq!(kids(keys.refresh().await), ["new"]);
}

#[tokio::test]
async fn refetches_are_spaced_out() {
    let server = Arc::new(KeyServer::default());
    *server.body.lock().unwrap() = Some(key_set("old"));
    let url = serve(Arc::clone(&server)).await;
    let keys = IssuerKeys::new(url);
    keys.current().await;
    *server.body.lock().unwrap() = Some(key_set("new"));
    // Unknown key ids within the minute do not reach the issuer.
    for _ in 0..5 {
        assert_eq!(kids(keys.refresh().await), ["old"]);
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_issuer_gives_no_keys() {
    let keys = IssuerKeys::new("http://127.0.0.1:9/jwks.json".to_owned());
    assert!(keys.current().await.is_none());
}
