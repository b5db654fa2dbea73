//! `watch-task <task_id>`: watches one task's progress live, the way a client of the WebSocket
//! API would (docs/live-progress.md): connect with a bearer token, subscribe, print each
//! frame as a line, stop at the `final` frame. Exit status 0 after `final`, 1 after an error.
//!
//! `WS_URL` (default `ws://127.0.0.1:3000/live`, the local gateway) and `TOKEN` (default
//! `dev-token-alice`) pick the API and the caller; `--json` prints the frames as they came.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn line(frame: &Value) -> String {
    let kind = frame["type"].as_str().unwrap_or("?");
    if kind == "error" {
        return format!(
            "error     {}: {}",
            frame["error"]["code"].as_str().unwrap_or("?"),
            frame["error"]["message"].as_str().unwrap_or("")
        );
    }
    if kind == "unsubscribed" {
        return "unsubscribed".to_owned();
    }
    let task = &frame["task"];
    let count = |name: &str| task["progress"][name].as_u64().unwrap_or(0);
    let mut line = format!(
        "{kind:<9} {:<21} {:>6}/{:<6} {:>3}%  succeeded {} failed {} cancelled {}",
        task["status"].as_str().unwrap_or("?"),
        count("processed"),
        count("total"),
        count("percent"),
        count("succeeded"),
        count("failed"),
        count("cancelled"),
    );
    if count("not_attempted") > 0 {
        line += &format!(" not attempted {}", count("not_attempted"));
    }
    if let Some(reason) = task["failure_reason"].as_str() {
        line += &format!(" ({reason})");
    }
    if task["progress"]["waiting_for_upstream"] == true {
        line += "  waiting for BOS";
    }
    line
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut task_id, mut raw) = (None, false);
    for arg in args.by_ref() {
        match arg.as_str() {
            "--json" => raw = true,
            _ => task_id = Some(arg),
        }
    }
    let Some(task_id) = task_id else {
        eprintln!("usage: watch-task [--json] <task_id>   (WS_URL, TOKEN from the environment)");
        std::process::exit(2);
    };
    let url = std::env::var("WS_URL").unwrap_or_else(|_| "ws://127.0.0.1:3000/live".to_owned());
    let token = std::env::var("TOKEN").unwrap_or_else(|_| "dev-token-alice".to_owned());
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(answer)) => {
            // 401: no token; 403: a token the authorizer refused.
            eprintln!(
                "the WebSocket API refused the connection: {}",
                answer.status()
            );
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    };
    let subscribe = json!({"action": "subscribe", "task_id": task_id});
    socket.send(Message::text(subscribe.to_string())).await?;
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text)?;
        println!("{}", if raw { text.to_string() } else { line(&frame) });
        match frame["type"].as_str() {
            Some("final") => {
                socket.close(None).await?;
                return Ok(());
            }
            Some("error") => std::process::exit(1),
            _ => {}
        }
    }
    eprintln!("the connection closed before the final frame; run again to resubscribe");
    std::process::exit(1)
}
