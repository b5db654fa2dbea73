//! End-to-end measurements on the local stack with the release binaries: requests per 1,000
//! items (counted by proxies in front of DynamoDB Local and moto), the task's duration against
//! its bound, and each function's peak memory during a 10,000-item task.

use crate::counting_proxy::{CountingProxy, Counts};
use crate::in_process::items;
use crate::report::Report;
use aws_sdk_dynamodb::types::AttributeValue;
use bos_simulator::{Knobs, Simulator};
use local_gateway::{LocalStack, StackConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn bos(knobs: Knobs) -> Result<(Simulator, String), BoxError> {
    let sim = Simulator::new(knobs, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sim.clone().serve(listener));
    Ok((sim, url))
}

fn config(prefix: &str, ddb: &str, sqs: &str, bos_url: &str) -> StackConfig {
    let mut c = StackConfig::new(env("PROJECT_ROOT", "."));
    c.prefix = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    c.dynamodb_endpoint = ddb.to_owned();
    c.sqs_endpoint = sqs.to_owned();
    c.functions_dir = PathBuf::from(env("FUNCTIONS_DIR", "target/release"));
    c.listen = ([127, 0, 0, 1], 0).into();
    c.parameters.insert("BosUrl".into(), bos_url.to_owned());
    let logs = std::env::temp_dir().join(&c.prefix);
    let _ = std::fs::create_dir_all(&logs);
    c.log_dir = Some(logs);
    c
}

async fn post(stack: &LocalStack, n: usize, first: u64) -> Result<String, BoxError> {
    let res = reqwest::Client::new()
        .post(format!("{}/tasks/beneficiaries-import", stack.url()))
        .bearer_auth("dev-token-alice")
        .header("content-type", "application/json")
        .body(items(n, first).to_string())
        .send()
        .await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    if status != 202 {
        return Err(format!("POST answered {status}: {body}").into());
    }
    Ok(body["task_id"].as_str().unwrap_or_default().to_owned())
}

/// Polls the task record directly in DynamoDB (not through the API, so the polling adds no
/// counted request) until it is final; returns its creation and finish times.
async fn wait_final(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> Result<(OffsetDateTime, OffsetDateTime), BoxError> {
    let key = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TASK#{id}"))),
        ("sk".to_owned(), AttributeValue::S("TASK".into())),
    ]);
    for _ in 0..12_000 {
        let out = ddb
            .get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await?;
        if let Some(item) = out.item() {
            let text = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            if let Ok(finished) = OffsetDateTime::parse(&text("finished_at"), &Rfc3339) {
                return Ok((
                    OffsetDateTime::parse(&text("created_at"), &Rfc3339)?,
                    finished,
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the task never finished".into())
}

const ITEMS: usize = 1_000;
const LATENCY_MS: u64 = 50;
const CONSUMERS: usize = 4;
const BOS_CONCURRENCY: usize = 8;
const CHUNK: usize = 32;

type TaskRun = (f64, Option<(Counts, Counts)>, u64);

/// One 1,000-item task with BOS at 50 ms: its duration, the requests counted (with
/// `counting`: through proxies, which add latency, so the timed run goes without them) and the
/// BOS calls.
async fn one_task(counting: bool) -> Result<TaskRun, BoxError> {
    let ddb_real = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    let sqs_real = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    let (ddb_proxy, ddb_proxied) = CountingProxy::start(&ddb_real).await?;
    let (sqs_proxy, sqs_proxied) = CountingProxy::start(&sqs_real).await?;
    let (ddb_url, sqs_url) = if counting {
        (ddb_proxied, sqs_proxied)
    } else {
        (ddb_real.clone(), sqs_real.clone())
    };
    let (sim, bos_url) = bos(Knobs {
        latency_ms: LATENCY_MS,
        ..Knobs::default()
    })
    .await?;
    let mut c = config("bench-e2e", &ddb_url, &sqs_url, &bos_url);
    c.concurrency = CONSUMERS;
    c.extra_env.insert("CHUNK_SIZE".into(), CHUNK.to_string());
    c.extra_env.insert("GROUPS_PER_TASK".into(), "32".into());
    c.extra_env
        .insert("BOS_CONCURRENCY".into(), BOS_CONCURRENCY.to_string());
    let stack = LocalStack::start(c).await?;
    let table = stack.provisioned.tables["TasksTable"].clone();
    let (ddb, _) = local_gateway::emulator_clients(&ddb_real, &sqs_real).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ddb_before, sqs_before) = (ddb_proxy.counts(), sqs_proxy.counts());

    let id = post(&stack, ITEMS, 1).await?;
    let (created, finished) = wait_final(&ddb, &table, &id).await?;
    // Let the event source mapping delete the last messages before counting.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let counts = counting.then(|| {
        (
            ddb_proxy.counts().since(&ddb_before),
            sqs_proxy.counts().since(&sqs_before),
        )
    });
    stack.stop();
    Ok((
        (finished - created).as_seconds_f64(),
        counts,
        sim.stats().requests,
    ))
}

pub async fn requests_and_latency(report: &mut Report) -> Result<(), BoxError> {
    let (took, _, _) = one_task(false).await?;
    let (_, counts, bos_calls) = one_task(true).await?;
    let (ddb_counts, sqs_counts) = counts.ok_or("no counts")?;
    let bound = ITEMS as f64 * LATENCY_MS as f64 / 1000.0 / (CONSUMERS * BOS_CONCURRENCY) as f64;
    report.check(
        format!("end to end, {ITEMS} items, BOS {LATENCY_MS} ms/call, {CONSUMERS} consumers × {BOS_CONCURRENCY} BOS calls, chunks of {CHUNK}"),
        format!("{took:.2} s (bound {bound:.2} s, {:.2}×)", took / bound),
        "≤ 1.25× bound",
        took <= 1.25 * bound,
    );
    let total = bos_calls + ddb_counts.billed_requests() + sqs_counts.billed_requests();
    let floor = (ITEMS + ITEMS + ITEMS.div_ceil(1000)) as u64;
    report.check(
        format!(
            "requests per {ITEMS} items end to end (BOS + DynamoDB + SQS, idle polls excluded)"
        ),
        format!(
            "{total} ({bos_calls} BOS, {} DynamoDB, {} SQS); floor {floor}: {:.2}×",
            ddb_counts.billed_requests(),
            sqs_counts.billed_requests(),
            total as f64 / floor as f64
        ),
        "≤ 1.2× floor",
        total as f64 <= 1.2 * floor as f64,
    );
    report.note(format!(
        "Floor per {ITEMS} items: one BOS call and one item write per item, and ⌈N/1000⌉ SendMessageBatch \
         (100 items per message, 10 messages per call). Item outcomes are written 99 to a transaction, so \
         DynamoDB requests sit far below one per item; in write units a transaction costs 2 per item."
    ));
    report.note(format!(
        "Bound: items × BOS latency / (consumers × BOS calls per consumer) = {ITEMS} × {LATENCY_MS} ms / {}. \
         Measured from the task's created_at to its finished_at.",
        CONSUMERS * BOS_CONCURRENCY
    ));
    report.info(
        "  DynamoDB requests by operation",
        format!("{:?}", ddb_counts.by_operation),
    );
    report.info(
        "  DynamoDB write units (items < 1 KB)",
        format!(
            "{} ({:.2} per item)",
            ddb_counts.write_units,
            ddb_counts.write_units as f64 / ITEMS as f64
        ),
    );
    report.info(
        "  SQS requests by operation",
        format!(
            "{:?}; receives with messages {}, idle long polls {} (not counted above)",
            sqs_counts.by_operation, sqs_counts.receives_with_messages, sqs_counts.empty_receives
        ),
    );
    Ok(())
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn peak_memory(report: &mut Report) -> Result<(), BoxError> {
    const ITEMS: usize = 10_000;
    let ddb_real = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    let sqs_real = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    let (_sim, bos_url) = bos(Knobs::default()).await?;
    let stack = LocalStack::start(config("bench-mem", &ddb_real, &sqs_real, &bos_url)).await?;
    let table = stack.provisioned.tables["TasksTable"].clone();
    let (ddb, _) = local_gateway::emulator_clients(&ddb_real, &sqs_real).await;
    let id = post(&stack, ITEMS, 100_000).await?;
    let (created, finished) = wait_final(&ddb, &table, &id).await?;
    report.info(
        format!("end to end, {ITEMS} items, BOS without latency, 2 consumers"),
        format!("{:.1} s", (finished - created).as_seconds_f64()),
    );
    for (name, pids) in stack.function_pids() {
        let peak_mb = pids
            .iter()
            .filter_map(|p| peak_rss_kb(*p))
            .max()
            .unwrap_or(0) as f64
            / 1024.0;
        let function = name.rsplit('-').next().unwrap_or(&name).to_owned();
        match function.as_str() {
            "ApiFunction" => report.check(
                format!("peak memory, ApiFunction, {ITEMS}-item task"),
                format!("{peak_mb:.1} MB"),
                "≤ 64 MB",
                peak_mb <= 64.0,
            ),
            "ConsumerFunction" => report.check(
                format!("peak memory, ConsumerFunction, {ITEMS}-item task"),
                format!("{peak_mb:.1} MB"),
                "≤ 48 MB",
                peak_mb <= 48.0,
            ),
            _ => report.info(
                format!("peak memory, {function}, {ITEMS}-item task"),
                format!("{peak_mb:.1} MB"),
            ),
        }
    }
    stack.stop();
    Ok(())
}
