//! Live progress on the local stack, with the release binaries and the template's settings
//! (the pusher's one-second batching window included):
//! - how fresh a frame is: from the write its task state comes from (the task's `updated_at`,
//!   stamped when a chunk's outcomes are recorded) to the frame reaching a WebSocket client;
//! - what the progress pusher costs: its processes' CPU time per 1,000 items, with a watcher
//!   on every task and with nobody watching (it still runs on every task change then).

use crate::end_to_end::{bos, config, post, wait_final};
use crate::report::{median, Report};
use crate::workload::{env, BoxError};
use bos_simulator::Knobs;
use futures::{SinkExt, StreamExt};
use local_gateway::LocalStack;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TASKS: usize = 3;
const ITEMS: usize = 1_000;
/// BOS latency: long enough that a 1,000-item task runs for seconds and streams changes.
const LATENCY_MS: u64 = 50;
/// Watches one task to its final frame: the freshness of each frame, in milliseconds.
async fn watch(url: &str, task_id: &str) -> Result<Vec<f64>, BoxError> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", "Bearer dev-token-alice".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let subscribe = serde_json::json!({"action": "subscribe", "task_id": task_id});
    socket.send(Message::text(subscribe.to_string())).await?;
    let mut freshness = Vec::new();
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        let received = OffsetDateTime::now_utc();
        let frame: serde_json::Value = serde_json::from_str(&text)?;
        let kind = frame["type"].as_str().unwrap_or_default();
        let updated = frame["task"]["updated_at"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        if let (Some(updated), "progress" | "final") = (updated, kind) {
            freshness.push((received - updated).as_seconds_f64() * 1e3);
        }
        if kind == "final" {
            return Ok(freshness);
        }
        if kind == "error" {
            return Err(format!("error frame: {text}").into());
        }
    }
    Err("the connection closed before the final frame".into())
}

pub async fn latency_and_cost(report: &mut Report) -> Result<(), BoxError> {
    let ddb = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    let sqs = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    let (_bos, bos_url) = bos(Knobs {
        latency_ms: LATENCY_MS,
        ..Knobs::default()
    })
    .await?;
    let stack = LocalStack::start(config("bench-live", &ddb, &sqs, &bos_url)).await?;
    let url = stack
        .websocket_url()
        .ok_or("the template has no WebSocket API")?;
    let table = stack.provisioned.tables["TasksTable"].clone();
    let (client, _) = local_gateway::emulator_clients(&ddb, &sqs).await;

    let pusher = "-ProgressPusherFunction";
    let start = crate::cpu::function_ms(&stack, pusher);
    let mut freshness = Vec::new();
    let mut frames = 0;
    for n in 0..TASKS {
        let task_id = post(&stack, ITEMS, 800_000 + (n * ITEMS) as u64).await?;
        let seen = watch(&url, &task_id).await?;
        frames += seen.len();
        freshness.extend(seen);
    }
    let watched = crate::cpu::function_ms(&stack, pusher) - start;

    let start = crate::cpu::function_ms(&stack, pusher);
    for n in 0..TASKS {
        let task_id = post(&stack, ITEMS, 900_000 + (n * ITEMS) as u64).await?;
        wait_final(&client, &table, &task_id).await?;
    }
    // The last changes' batch: the pusher's window is a second.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let unwatched = crate::cpu::function_ms(&stack, pusher) - start;
    stack.stop();

    freshness.sort_by(|a, b| a.total_cmp(b));
    let p95 = freshness[(freshness.len() * 95).div_ceil(100) - 1];
    let per_thousand = |ms: f64| ms / (TASKS * ITEMS) as f64 * 1_000.0;
    report.info(
        format!(
            "live progress: outcome recorded → frame received ({frames} frames, {TASKS} × {ITEMS} items, BOS {LATENCY_MS} ms)"
        ),
        format!("median {:.0} ms, p95 {p95:.0} ms", median(freshness.clone())),
    );
    report.info(
        "live progress: frames per watched 1,000-item task (snapshot excluded)",
        format!("{:.1}", frames as f64 / TASKS as f64),
    );
    report.info(
        "progress pusher CPU per 1,000 items, every task watched",
        format!("{:.0} ms", per_thousand(watched)),
    );
    report.info(
        "progress pusher CPU per 1,000 items, nobody watching",
        format!("{:.0} ms", per_thousand(unwatched)),
    );
    report.note(
        "A frame shows the task as of its newest change. The pusher gathers a second of changes \
         (MaximumBatchingWindowInSeconds: 1) into one frame per task, so the oldest change in a \
         frame can be up to a second older than the freshness above. CPU time is read from \
         /proc for the pusher's processes (release build).",
    );
    Ok(())
}
