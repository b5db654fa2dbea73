//! How soon a client hears that its task finished: from the task's final write (its
//! `finished_at`) to the first delivery attempt reaching a receiver on this machine, over
//! [`TASKS`] one-item imports, through the whole local pipeline (the table's stream, the
//! notifier, the delivery queue, the sender), with the release binaries.

use crate::end_to_end::{bos, config, post};
use crate::report::{median, Report};
use crate::workload::{env, BoxError};
use bos_simulator::Knobs;
use local_gateway::LocalStack;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

const TASKS: usize = 20;

type Arrivals = Arc<Mutex<Vec<(OffsetDateTime, String)>>>;

/// A receiver that answers 204 and notes when each request arrived.
async fn receiver() -> Result<(String, Arrivals), BoxError> {
    use axum::extract::State;
    async fn hook(State(arrivals): State<Arrivals>, body: String) -> axum::http::StatusCode {
        let now = OffsetDateTime::now_utc();
        arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((now, body));
        axum::http::StatusCode::NO_CONTENT
    }
    let arrivals = Arrivals::default();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(hook))
        .with_state(Arc::clone(&arrivals));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

pub async fn latency(report: &mut Report) -> Result<(), BoxError> {
    let ddb = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    let sqs = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    let (_bos, bos_url) = bos(Knobs::default()).await?;
    let stack = LocalStack::start(config("bench-webhooks", &ddb, &sqs, &bos_url)).await?;
    let (url, arrivals) = receiver().await?;
    let registered = reqwest::Client::new()
        .post(format!("{}/webhook-endpoints", stack.url()))
        .bearer_auth("dev-token-alice")
        .header("content-type", "application/json")
        .body(serde_json::json!({ "url": url }).to_string())
        .send()
        .await?;
    if registered.status() != 201 {
        return Err(format!("registration answered {}", registered.status()).into());
    }

    let mut latencies = Vec::with_capacity(TASKS);
    for n in 0..TASKS {
        post(&stack, 1, 700_000 + n as u64).await?;
        // One task at a time, so each delivery waits on nothing but its own pipeline.
        let mut arrived = None;
        for _ in 0..3_000 {
            let got = arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(n)
                .cloned();
            if got.is_some() {
                arrived = got;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (at, body) = arrived.ok_or("no delivery arrived within 30 s")?;
        let event: serde_json::Value = serde_json::from_str(&body)?;
        let finished = event["data"]["finished_at"]
            .as_str()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .ok_or("the event has no finished_at")?;
        latencies.push((at - finished).as_seconds_f64() * 1e3);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p95 = latencies[(latencies.len() * 95).div_ceil(100) - 1];
    report.info(
        format!("webhook: task's final write → first delivery attempt ({TASKS} tasks, local)"),
        format!(
            "median {:.0} ms, p95 {p95:.0} ms",
            median(latencies.clone())
        ),
    );
    report.note(
        "The local stack reads DynamoDB Local's stream every 100 ms when idle, as Lambda's \
         event source polls a shard; in AWS the stream's own propagation adds to this.",
    );
    stack.stop();
    Ok(())
}
