//! End-to-end measurements on the local stack with the release binaries and the template's own
//! settings: requests per 1,000 items (counted by proxies in front of DynamoDB Local and moto)
//! and each function's peak memory during a 10,000-item task. Also the helpers the scheduling
//! benchmarks share: a BOS simulator, a stack, a POST, a wait.

use crate::counting_proxy::{CountingProxy, Counts};
use crate::report::Report;
use crate::workload::{env, items, BoxError};
use aws_sdk_dynamodb::types::AttributeValue;
use bos_simulator::{Knobs, Simulator};
use local_gateway::{LocalStack, StackConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub async fn bos(knobs: Knobs) -> Result<(Simulator, String), BoxError> {
    let sim = Simulator::new(knobs, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sim.clone().serve(listener));
    Ok((sim, url))
}

/// Callers the benchmarks use: `dev-token-{name}` is caller `{name}`.
pub const CALLERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// A stack of the release binaries with the template as it ships: only the BOS URL (a
/// parameter) and the development tokens are local.
pub fn config(prefix: &str, ddb: &str, sqs: &str, bos_url: &str) -> StackConfig {
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
    // For finding where a run's time goes: `BENCH_PAUSE` names functions (logical ids,
    // comma-separated) whose event sources stay paused, e.g. the stream readers.
    if let Ok(paused) = std::env::var("BENCH_PAUSE") {
        c.paused_event_sources = paused.split(',').map(|f| f.trim().to_owned()).collect();
    }
    // For trying another setting before changing the template: `BENCH_PARAMETERS` overrides
    // template parameters (`Name=value`, comma-separated). A row run so is not the template's.
    if let Ok(overrides) = std::env::var("BENCH_PARAMETERS") {
        for (name, value) in overrides.split(',').filter_map(|p| p.split_once('=')) {
            c.parameters
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
    let logs = std::env::temp_dir().join(&c.prefix);
    let _ = std::fs::create_dir_all(&logs);
    c.log_dir = Some(logs);
    for name in CALLERS {
        c.tokens
            .insert(format!("dev-token-{name}"), name.to_owned());
    }
    c
}

pub async fn post(stack: &LocalStack, n: usize, first: u64) -> Result<String, BoxError> {
    post_as(stack, "alice", n, first).await
}

/// Imports `n` beneficiaries (IBANs numbered from `first`) as `caller`; returns the task id.
pub async fn post_as(
    stack: &LocalStack,
    caller: &str,
    n: usize,
    first: u64,
) -> Result<String, BoxError> {
    let res = reqwest::Client::new()
        .post(format!("{}/tasks/beneficiaries-import", stack.url()))
        .bearer_auth(format!("dev-token-{caller}"))
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
pub async fn wait_final(
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

/// One 1,000-item task with BOS at 50 ms, through proxies that count the DynamoDB and SQS
/// requests: those counts and the BOS calls.
async fn counted_task() -> Result<(Counts, Counts, u64), BoxError> {
    let ddb_real = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    let sqs_real = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    let (ddb_proxy, ddb_proxied) = CountingProxy::start(&ddb_real).await?;
    let (sqs_proxy, sqs_proxied) = CountingProxy::start(&sqs_real).await?;
    let (sim, bos_url) = bos(Knobs {
        latency_ms: LATENCY_MS,
        ..Knobs::default()
    })
    .await?;
    let stack =
        LocalStack::start(config("bench-e2e", &ddb_proxied, &sqs_proxied, &bos_url)).await?;
    let table = stack.provisioned.tables["TasksTable"].clone();
    let (ddb, _) = local_gateway::emulator_clients(&ddb_real, &sqs_real).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ddb_before, sqs_before) = (ddb_proxy.counts(), sqs_proxy.counts());

    let id = post(&stack, ITEMS, 1).await?;
    wait_final(&ddb, &table, &id).await?;
    // Let the event source mapping delete the last messages before counting.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let counts = (
        ddb_proxy.counts().since(&ddb_before),
        sqs_proxy.counts().since(&sqs_before),
    );
    stack.stop();
    Ok((counts.0, counts.1, sim.stats().requests))
}

pub async fn requests(report: &mut Report) -> Result<(), BoxError> {
    let (ddb_counts, sqs_counts, bos_calls) = counted_task().await?;
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
         (100 items per message, 10 messages per call). Item outcomes are written a chunk to a transaction, so \
         DynamoDB requests sit far below one per item. A transaction bills 2 write units per KB of each item it \
         writes, so outcomes go to records of 32, deflated (about 3 KB a record). \
         Scheduling adds, per chunk, its stored body and one hand-off (a few reads, one transaction, one send)."
    ));
    report.info(
        "  DynamoDB requests by operation",
        format!("{:?}", ddb_counts.by_operation),
    );
    let chunks = ITEMS.div_ceil(crate::shipped::api_settings()?.chunk_size) as f64;
    report.info(
        format!("  DynamoDB reads (GetItem) by item kind, and per chunk ({chunks} chunks)"),
        ddb_counts
            .reads_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n} ({:.1})", *n as f64 / chunks))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.info(
        "  DynamoDB write units (sized as DynamoDB bills them: see counting_proxy)",
        format!(
            "{} ({:.2} per item)",
            ddb_counts.write_units,
            ddb_counts.write_units as f64 / ITEMS as f64
        ),
    );
    report.info(
        "  DynamoDB write units by write (operation and item kinds), and per item",
        ddb_counts
            .write_units_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n} ({:.2})", *n as f64 / ITEMS as f64))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.info(
        "  DynamoDB writes by write, per chunk, and how many of them were refused (lost lane races, repeats)",
        ddb_counts
            .writes_by_kind
            .iter()
            .map(|(kind, n)| {
                let refused = ddb_counts.refused_by_kind.get(kind).copied().unwrap_or(0);
                format!("{kind} {n} ({:.1}; {refused} refused)", *n as f64 / chunks)
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.info(
        "  SQS requests by operation",
        format!(
            "{:?}; receives with messages {}, idle long polls {} (not counted above)",
            sqs_counts.by_operation, sqs_counts.receives_with_messages, sqs_counts.empty_receives
        ),
    );
    kms_requests(report, sqs_counts.billed_requests());
    Ok(())
}

/// KMS requests our own key costs: modelled, since nothing plays KMS behind DynamoDB Local
/// and moto. SQS asks KMS once per queue and principal (role) per data-key reuse period, for
/// a data key to send with (`GenerateDataKey`) or read with (`Decrypt`); DynamoDB asks once per
/// table and caller per 5 minutes of table-key cache. Neither grows with messages or items.
fn kms_requests(report: &mut Report, sqs_requests: u64) {
    // (role, queue) pairs: api → work, delivery; consumer ↔ work; dead-letter ← DLQ, → work;
    // notifier → delivery; webhook sender ← delivery.
    const SQS_ROLE_QUEUE_PAIRS: u64 = 7;
    // Every function's role reads or writes the table.
    const TABLE_CALLERS: u64 = 5;
    const REUSE_SECS: u64 = 300; // template.yaml: KmsDataKeyReusePeriodSeconds
    const USD_PER_10K: f64 = 0.03;
    let per_window = SQS_ROLE_QUEUE_PAIRS + TABLE_CALLERS;
    report.info(
        format!(
            "KMS requests for the customer-managed key (modelled: SQS data keys reused {REUSE_SECS} s per queue and role, DynamoDB table key cached 5 min per caller)"
        ),
        format!(
            "at most {per_window} per 5-minute window whatever the volume: a lone {ITEMS}-item task in a quiet window pays all {per_window} (${:.5}); at 100,000 items per window, {:.2} per {ITEMS} items. Its SQS requests ({sqs_requests} per {ITEMS} items) each reuse a cached data key",
            per_window as f64 * USD_PER_10K / 10_000.0,
            per_window as f64 * ITEMS as f64 / 100_000.0,
        ),
    );
}

pub(crate) fn peak_rss_kb(pid: u32) -> Option<u64> {
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
        format!("end to end, {ITEMS} items, BOS without latency"),
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
