//! Live progress end to end: a WebSocket client (tokio-tungstenite) against the WebSocket API
//! the local gateway plays from template.yaml, with the real authorizer, route function and
//! progress pusher behind it, fed by DynamoDB Local's stream.

use futures::{SinkExt, StreamExt};
use integration_tests::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a connection with `authorization` as the header, if any: the socket, or the HTTP
/// status the handshake was refused with.
async fn open(app: &TestApp, authorization: Option<&str>) -> Result<Socket, u16> {
    open_at(app, "", authorization).await
}

/// Opens a connection as a browser does: a live ticket in the query string, no header.
async fn open_with_ticket(app: &TestApp, ticket: &str) -> Result<Socket, u16> {
    open_at(app, &format!("?ticket={ticket}"), None).await
}

/// A live ticket for `token`'s caller, from `POST /live-tickets`.
async fn ticket(app: &TestApp, token: &str) -> String {
    let answer = app
        .send(app.request(reqwest::Method::POST, token, "/live-tickets"))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.headers["cache-control"], "no-store");
    answer.body["ticket"].as_str().expect("a ticket").to_owned()
}

async fn open_at(app: &TestApp, query: &str, authorization: Option<&str>) -> Result<Socket, u16> {
    let url = app
        .stack
        .websocket_url()
        .expect("the template has a WebSocket API");
    let mut request = format!("{url}{query}")
        .into_client_request()
        .expect("request");
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn connect(app: &TestApp, token: &str) -> Socket {
    open(app, Some(&format!("Bearer {token}")))
        .await
        .expect("a development token connects")
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// The next text frame, as JSON. Bounded so a missing frame fails the test instead of
/// hanging it; the bound says nothing about speed.
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(POLL_BOUND, socket.next())
            .await
            .expect("a frame arrives")
            .expect("the connection stays open")
            .expect("a readable frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("frames are JSON");
        }
    }
}

/// A stack whose BOS answers in 20 ms, so that 1,000 items take seconds: long enough for
/// changes to stream, and for a connection to drop while its task runs.
async fn spawn_slow_app() -> TestApp {
    spawn_app_with(AppOptions {
        knobs: bos_simulator::Knobs {
            latency_ms: 20,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

fn subscribe(task_id: &str) -> Value {
    json!({"action": "subscribe", "task_id": task_id})
}

#[tokio::test]
async fn a_watched_import_streams_progress_then_exactly_one_final_frame() {
    let app = spawn_slow_app().await;
    let mut socket = connect(&app, ALICE).await;
    let answer = app.import(ALICE, &beneficiaries(1_000)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();
    send(&mut socket, subscribe(&task_id)).await;

    let mut frames = Vec::new();
    loop {
        let frame = next_frame(&mut socket).await;
        let done = frame["type"] == "final";
        frames.push(frame);
        if done {
            break;
        }
    }
    // Nothing follows the final frame: the unsubscribe's answer comes next.
    send(
        &mut socket,
        json!({"action": "unsubscribe", "task_id": task_id}),
    )
    .await;
    let after = next_frame(&mut socket).await;
    assert_eq!(after, json!({"type": "unsubscribed", "task_id": task_id}));

    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "snapshot", "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"final"));
    assert_eq!(kinds.iter().filter(|k| **k == "final").count(), 1);
    assert!(
        kinds[1..kinds.len() - 1].iter().all(|k| *k == "progress"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"progress"),
        "the import streamed no progress: {kinds:?}"
    );
    let processed: Vec<u64> = frames
        .iter()
        .map(|f| f["task"]["progress"]["processed"].as_u64().unwrap())
        .collect();
    assert!(
        processed.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {processed:?}"
    );
    for frame in &frames {
        assert_eq!(frame["task"]["task_id"], task_id.as_str());
    }
    // The final frame is the task exactly as GET returns it.
    let task = app.wait_final(ALICE, &task_id).await;
    assert_eq!(frames.last().unwrap()["task"], task);
    assert_eq!(task["progress"]["succeeded"], 1_000);

    // No PII, no token, no subject in the live progress functions' logs.
    let logs = ["ws-authorizer", "ws-connections", "progress-pusher"]
        .map(|binary| app.function_log(binary))
        .join("\n");
    assert!(logs.contains("changes pushed"), "the pusher ran");
    for secret in ["Payee", &german_iban(1), "dev-token", "\"alice\""] {
        assert!(!logs.contains(secret), "a log holds {secret}");
    }
}

#[tokio::test]
async fn connecting_needs_a_valid_token() {
    let app = spawn_app().await;
    // No identity source is required (a browser brings a ticket instead of the header), so
    // the authorizer itself refuses a connection that brings neither.
    assert_eq!(open(&app, None).await.err(), Some(403));
    assert_eq!(
        open(&app, Some("Bearer not-a-token")).await.err(),
        Some(403)
    );
    assert_eq!(open(&app, Some("dev-token-alice")).await.err(), Some(403));
    // A well-formed JWT the issuer never signed.
    let forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    assert_eq!(
        open(&app, Some(&format!("Bearer {forged}"))).await.err(),
        Some(403)
    );
    // Nothing was recorded for the refused attempts.
    assert!(!app.table_item_kinds().await.contains_key("CONN"));
    let mut socket = connect(&app, ALICE).await;
    send(&mut socket, json!({"action": "dance"})).await;
    assert_eq!(
        next_frame(&mut socket).await["error"]["code"],
        "invalid_task_id"
    );
}

#[tokio::test]
async fn a_browser_connects_once_with_a_ticket_as_the_caller_who_asked_for_it() {
    // Given bob's task, and a ticket bob asked for with his token
    let app = spawn_app().await;
    let answer = app.import(BOB, &beneficiaries(3)).await;
    let bobs = answer.body["task_id"].as_str().unwrap().to_owned();
    let bob_ticket = ticket(&app, BOB).await;

    // When a browser connects with the ticket and no header
    let mut socket = open_with_ticket(&app, &bob_ticket)
        .await
        .expect("a fresh ticket connects");

    // Then the connection is bob's: his task's snapshot comes back
    send(&mut socket, subscribe(&bobs)).await;
    let snapshot = next_frame(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["task"]["task_id"], bobs.as_str());

    // A ticket opens one connection: the second try is refused.
    assert_eq!(open_with_ticket(&app, &bob_ticket).await.err(), Some(403));
    // A made-up ticket is refused, and alice's ticket does not show her bob's task.
    assert_eq!(open_with_ticket(&app, "forged").await.err(), Some(403));
    let mut alice = open_with_ticket(&app, &ticket(&app, ALICE).await)
        .await
        .expect("alice's ticket connects");
    send(&mut alice, subscribe(&bobs)).await;
    assert_eq!(
        next_frame(&mut alice).await["error"]["code"],
        "task_not_found"
    );

    // No ticket was logged by any function.
    assert!(!app.function_logs().contains(&bob_ticket));
    // A ticket needs a caller.
    let anonymous = app
        .send(app.http.post(format!("{}/live-tickets", app.base)))
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn another_callers_task_gets_the_same_error_as_an_unknown_one() {
    let app = spawn_app().await;
    let answer = app.import(BOB, &beneficiaries(3)).await;
    let bobs = answer.body["task_id"].as_str().unwrap().to_owned();
    let mut socket = connect(&app, ALICE).await;
    send(&mut socket, subscribe(&bobs)).await;
    let refused = next_frame(&mut socket).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    send(&mut socket, subscribe(&unknown)).await;
    let not_found = next_frame(&mut socket).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["error"]["code"], "task_not_found");
    assert_eq!(refused["error"], not_found["error"]);
    assert_eq!(refused["task_id"], bobs.as_str());
    // Bob's task went on without alice hearing of it; bob himself may watch it.
    let mut bob = connect(&app, BOB).await;
    send(&mut bob, subscribe(&bobs)).await;
    assert_eq!(next_frame(&mut bob).await["type"], "snapshot");
    // …and hears its end.
    while next_frame(&mut bob).await["type"] != "final" {}
}

#[tokio::test]
async fn a_dropped_connection_is_cleaned_up() {
    let app = spawn_slow_app().await;
    let answer = app.import(ALICE, &beneficiaries(300)).await;
    let task_id = answer.body["task_id"].as_str().unwrap().to_owned();
    let mut socket = connect(&app, ALICE).await;
    send(&mut socket, subscribe(&task_id)).await;
    assert_eq!(next_frame(&mut socket).await["type"], "snapshot");
    let kinds = app.table_item_kinds().await;
    assert_eq!(kinds.get("CONN"), Some(&1), "{kinds:?}");
    // The client vanishes without a close frame.
    drop(socket);
    let cleaned = eventually(|| async {
        let kinds = app.table_item_kinds().await;
        let gone = !kinds.contains_key("CONN") && !kinds.contains_key("SUB");
        (gone && app.stack.websockets()[0].open_connections() == 0).then_some(())
    })
    .await;
    assert!(cleaned.is_some(), "the connection's records stayed");
    // The task itself is unaffected.
    let task = app.wait_final(ALICE, &task_id).await;
    assert_eq!(task["progress"]["succeeded"], 300);
}
