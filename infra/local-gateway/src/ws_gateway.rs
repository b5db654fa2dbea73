//! Plays an API Gateway WebSocket API from the template, on the gateway's own port:
//! - `GET /{stage}` upgrades to a WebSocket once the route's REQUEST authorizer allowed it
//!   (an identity source the template names is missing: 401 before any function runs, as API
//!   Gateway answers; a Deny: 403) and `$connect` answered 2xx. The authorizer gets the
//!   request's headers and query string, as API Gateway sends them;
//! - each text frame goes to the route its `$request.body.{field}` selects, else `$default`,
//!   one at a time per connection, with the authorizer's context, as API Gateway sends it;
//! - a close (or a dropped socket) invokes `$disconnect`;
//! - `POST /{stage}/@connections/{id}` sends a frame, `DELETE` closes the connection and `GET`
//!   describes it: the management API the functions call through
//!   `aws-sdk-apigatewaymanagement`. An unknown or closed id gets 410 `GoneException`.

use crate::function::FunctionPool;
use crate::template::WebSocketApiSpec;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// API Gateway's largest WebSocket message.
const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// One WebSocket API, its functions started.
pub struct WsGateway {
    pub api: WebSocketApiSpec,
    /// Route key → the function its integration invokes.
    pub routes: HashMap<String, Arc<FunctionPool>>,
    /// The `$connect` route's authorizer function, if it has one.
    pub authorizer: Option<Arc<FunctionPool>>,
    /// Its `IdentitySource`s, which must all be present before it is invoked.
    identity_sources: Vec<String>,
    connections: Mutex<HashMap<String, Connection>>,
}

struct Connection {
    frames: mpsc::UnboundedSender<Outbound>,
    connected_at: i64,
}

enum Outbound {
    Text(String),
    Close,
}

/// What every route of one connection is sent along with its own fields.
#[derive(Clone)]
struct Session {
    id: String,
    /// The authorizer's `context`, plus `principalId`: `requestContext.authorizer`.
    authorizer: Value,
    connected_at: i64,
}

impl WsGateway {
    pub fn new(
        api: WebSocketApiSpec,
        routes: HashMap<String, Arc<FunctionPool>>,
        authorizer: Option<Arc<FunctionPool>>,
        identity_sources: Vec<String>,
    ) -> Self {
        Self {
            api,
            routes,
            authorizer,
            identity_sources,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Connections open now (the tests check that closed ones are gone).
    pub fn open_connections(&self) -> usize {
        lock(&self.connections).len()
    }

    fn request_context(&self, session: &Session, route: &str, event_type: &str) -> Value {
        let now = OffsetDateTime::now_utc();
        json!({
            "routeKey": route,
            "eventType": event_type,
            "messageDirection": "IN",
            "connectionId": session.id,
            "connectedAt": session.connected_at,
            "requestId": uuid::Uuid::new_v4().to_string(),
            "messageId": uuid::Uuid::new_v4().to_string(),
            "extendedRequestId": uuid::Uuid::new_v4().to_string(),
            "requestTimeEpoch": now.unix_timestamp() * 1000,
            "domainName": "127.0.0.1",
            "stage": self.api.stage,
            "apiId": "local",
            "accountId": "000000000000",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": session.authorizer,
        })
    }

    /// Invokes `route`'s function; its answer's `statusCode`, or 500 if it failed.
    async fn invoke_route(&self, route: &str, event: Value) -> u16 {
        let Some(function) = self.routes.get(route) else {
            return 500;
        };
        match function.invoke(event.to_string().into_bytes()).await {
            Ok(body) => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["statusCode"].as_u64())
                .map_or(200, |s| s as u16),
            Err(e) => {
                tracing::warn!(route, error = %e, "websocket route failed");
                500
            }
        }
    }

    /// The route a message selects: the `$request.body.{field}` value if a route has that key.
    fn route_of(&self, text: &str) -> &str {
        let field = self.api.route_selection.strip_prefix("$request.body.");
        let selected = field.and_then(|f| {
            serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get(f).and_then(Value::as_str).map(str::to_owned))
        });
        match selected {
            Some(key) if !key.starts_with('$') && self.routes.contains_key(&key) => self
                .routes
                .get_key_value(&key)
                .map_or("$default", |(k, _)| k.as_str()),
            _ => "$default",
        }
    }

    /// Runs the authorizer: `Ok(context)` to allow, `Err(status)` to refuse.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        id: &str,
    ) -> Result<Value, StatusCode> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(json!({}));
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let present = |source: &String| match source.strip_prefix("route.request.") {
            Some(rest) => match rest.split_once('.') {
                Some(("header", name)) => header(&name.to_ascii_lowercase()).is_some(),
                Some(("querystring", name)) => query.contains_key(name),
                _ => true,
            },
            None => true,
        };
        if !self.identity_sources.iter().all(present) {
            return Err(StatusCode::UNAUTHORIZED);
        }
        let mut sent_headers = Map::new();
        let mut multi_headers = Map::new();
        for name in ["authorization", "origin", "host", "user-agent"] {
            if let Some(value) = header(name) {
                sent_headers.insert(name.to_owned(), json!(value));
                multi_headers.insert(name.to_owned(), json!([value]));
            }
        }
        let multi_query: Map<String, Value> =
            query.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
        let event = json!({
            "type": "REQUEST",
            "methodArn": format!("arn:aws:execute-api:us-east-1:000000000000:local/{}/$connect", self.api.stage),
            "headers": sent_headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "stageVariables": {},
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": id,
                "stage": self.api.stage, "apiId": "local"},
        });
        let answer = authorizer
            .invoke(event.to_string().into_bytes())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "authorizer failed");
                StatusCode::INTERNAL_SERVER_ERROR
            })?;
        let answer: Value =
            serde_json::from_slice(&answer).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let statements = answer["policyDocument"]["Statement"].as_array();
        let allowed = statements.is_some_and(|s| {
            !s.is_empty()
                && s.iter().all(|st| st["Effect"] == "Allow")
                && s.iter().any(|st| st["Action"] == "execute-api:Invoke")
        });
        if !allowed {
            return Err(StatusCode::FORBIDDEN);
        }
        let mut context = answer["context"].as_object().cloned().unwrap_or_default();
        context.insert("principalId".to_owned(), answer["principalId"].clone());
        Ok(Value::Object(context))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The WebSocket endpoint and the `@connections` API, under the API's stage.
pub fn router(gateway: Arc<WsGateway>) -> Router {
    let stage = gateway.api.stage.clone();
    Router::new()
        .route(&format!("/{stage}"), get(upgrade))
        .route(
            &format!("/{stage}/@connections/{{id}}"),
            get(describe).post(post_frame).delete(close),
        )
        .with_state(gateway)
}

async fn upgrade(
    State(gateway): State<Arc<WsGateway>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    // Like API Gateway's: opaque, unguessable, base64.
    let id = URL_SAFE_NO_PAD.encode(&uuid::Uuid::new_v4().as_bytes()[..12]);
    let authorizer = match gateway.authorize(&headers, &query, &id).await {
        Ok(context) => context,
        Err(status) => return (status, "").into_response(),
    };
    let session = Session {
        id,
        authorizer,
        connected_at: OffsetDateTime::now_utc().unix_timestamp() * 1000,
    };
    let mut headers_json = Map::new();
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            headers_json.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    let event = json!({
        "headers": headers_json,
        "requestContext": gateway.request_context(&session, "$connect", "CONNECT"),
        "isBase64Encoded": false,
    });
    let status = gateway.invoke_route("$connect", event).await;
    if !(200..300).contains(&status) {
        return StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(gateway, session, socket))
}

/// Runs one connection until either side closes it, then invokes `$disconnect`.
async fn serve(gateway: Arc<WsGateway>, session: Session, socket: WebSocket) {
    use futures::{SinkExt, StreamExt};
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&gateway.connections).insert(
        session.id.clone(),
        Connection {
            frames: tx,
            connected_at: session.connected_at,
        },
    );
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let sent = match out {
                Outbound::Text(text) => sink.send(Message::Text(text.into())).await,
                Outbound::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let (body, base64) = match message {
            Message::Text(text) => (text.to_string(), false),
            Message::Binary(bytes) => (B64.encode(&bytes), true),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let route = if base64 {
            "$default"
        } else {
            gateway.route_of(&body)
        };
        let event = json!({
            "body": body,
            "isBase64Encoded": base64,
            "requestContext": gateway.request_context(&session, route, "MESSAGE"),
        });
        gateway.invoke_route(route, event).await;
    }
    lock(&gateway.connections).remove(&session.id);
    writer.abort();
    let event = json!({
        "requestContext": gateway.request_context(&session, "$disconnect", "DISCONNECT"),
        "isBase64Encoded": false,
    });
    gateway.invoke_route("$disconnect", event).await;
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [
            ("x-amzn-ErrorType", "GoneException"),
            ("content-type", "application/json"),
        ],
        json!({"message": null}).to_string(),
    )
        .into_response()
}

async fn post_frame(
    State(gateway): State<Arc<WsGateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_MESSAGE_BYTES {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [("x-amzn-ErrorType", "PayloadTooLargeException")],
            json!({"message": "Message too long"}).to_string(),
        )
            .into_response();
    }
    let connections = lock(&gateway.connections);
    let Some(connection) = connections.get(&id) else {
        return gone();
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    match connection.frames.send(Outbound::Text(text)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => gone(),
    }
}

async fn close(State(gateway): State<Arc<WsGateway>>, Path(id): Path<String>) -> Response {
    match lock(&gateway.connections).get(&id) {
        Some(connection) => {
            let _ = connection.frames.send(Outbound::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}

async fn describe(State(gateway): State<Arc<WsGateway>>, Path(id): Path<String>) -> Response {
    match lock(&gateway.connections).get(&id) {
        Some(connection) => {
            let at = OffsetDateTime::from_unix_timestamp(connection.connected_at / 1000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                json!({"connectedAt": at, "identity": {"sourceIp": "127.0.0.1"}}).to_string(),
            )
                .into_response()
        }
        None => gone(),
    }
}
