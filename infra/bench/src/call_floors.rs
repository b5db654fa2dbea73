//! The floors under the consumer's CPU per item: what the calls it cannot avoid cost the
//! calling thread, with no code of ours around them.
//! - One bare HTTP call to BOS. The consumer makes one per item (BOS creates one beneficiary a
//!   call), so no change to the pipeline can bring its CPU per item under this.
//! - One DynamoDB request through the AWS SDK, configured as the functions configure it. A
//!   chunk's hand-off and outcome write make a few of these, shared by the chunk's items.
//!
//! The calls go from a thread of their own, on a one-thread runtime as the consumer's, as many
//! at once as one consumer makes. The thread's CPU time (user + system,
//! `/proc/thread-self/schedstat`) counts the kernel's work on the loopback sends too, as the
//! consumer's does.

use crate::end_to_end::bos;
use crate::workload::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use bos_simulator::Knobs;
use futures::StreamExt;
use std::future::Future;

/// Calls made, after a warm-up that opens the connections.
const CALLS: u64 = 800;
const WARM_UP: u64 = 16;

/// CPU time of the calling thread so far, in nanoseconds.
fn thread_cpu_ns() -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let on_cpu = stat.split_whitespace().next().ok_or("empty schedstat")?;
    Ok(on_cpu.parse()?)
}

/// Runs `set_up` and then `CALLS` of `call` (after `WARM_UP` more), `at_once` in flight, on a
/// thread and one-thread runtime of their own; returns the thread's CPU per measured call, in
/// µs. `set_up` runs on that runtime, so the clients it builds live there.
fn per_call_on_own_thread<S, SF, C, CF>(
    at_once: usize,
    set_up: S,
) -> impl Future<Output = Result<f64, BoxError>>
where
    S: FnOnce() -> SF + Send + 'static,
    SF: Future<Output = Result<C, BoxError>>,
    C: Fn(u64) -> CF,
    CF: Future<Output = Result<(), BoxError>>,
{
    let thread = std::thread::spawn(move || -> Result<f64, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime
            .block_on(async move {
                let call = set_up().await?;
                let run = |range: std::ops::Range<u64>| {
                    futures::stream::iter(range)
                        .map(&call)
                        .buffer_unordered(at_once)
                        .collect::<Vec<_>>()
                };
                for r in run(0..WARM_UP).await {
                    r?;
                }
                let before = thread_cpu_ns()?;
                for r in run(WARM_UP..WARM_UP + CALLS).await {
                    r?;
                }
                let spent = thread_cpu_ns()? - before;
                Ok::<f64, BoxError>(spent as f64 / 1e3 / CALLS as f64)
            })
            .map_err(|e| e.to_string())
    });
    async move {
        let per_call = tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| "the calling thread panicked")??;
        Ok(per_call)
    }
}

/// Client CPU per BOS creation, in µs: `at_once` in flight, BOS at `latency_ms`.
pub async fn bos_call(latency_ms: u64, at_once: usize) -> Result<f64, BoxError> {
    let (_sim, url) = bos(Knobs {
        latency_ms,
        ..Knobs::default()
    })
    .await?;
    let create: reqwest::Url = format!("{url}/v1/beneficiaries").parse()?;
    per_call_on_own_thread(at_once, move || async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok::<_, BoxError>(move |n: u64| {
            let (http, create) = (http.clone(), create.clone());
            async move {
                // Distinct IBANs: a repeated one is refused as a duplicate, a cheaper answer.
                let iban = tasks_core::test_ibans::german(7_000_000 + n);
                let body = serde_json::json!({"name": "N", "country": "DE", "currency": "EUR", "iban": iban});
                let answer = http
                    .post(create)
                    .header("Idempotency-Key", format!("floor:{n}"))
                    .json(&body)
                    .send()
                    .await?;
                let status = answer.status();
                answer.bytes().await?;
                if !status.is_success() {
                    return Err(format!("BOS answered {status}").into());
                }
                Ok(())
            }
        })
    })
    .await
}

/// Client CPU per DynamoDB `GetItem` of a small item that exists, in µs, through the AWS SDK
/// with the functions' configuration (`aws_adapters::startup::sdk_defaults`), `at_once` in
/// flight, against `table` at `endpoint`.
pub async fn dynamodb_get(endpoint: &str, table: &str, at_once: usize) -> Result<f64, BoxError> {
    let (endpoint, table) = (endpoint.to_owned(), table.to_owned());
    per_call_on_own_thread(at_once, move || async move {
        let creds =
            aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "bench");
        let aws = aws_adapters::startup::sdk_defaults()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load()
            .await;
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws)
                .endpoint_url(endpoint)
                .build(),
        );
        let key = |name: &str| {
            [
                ("pk".to_owned(), AttributeValue::S("BENCH#FLOOR".into())),
                ("sk".to_owned(), AttributeValue::S(name.into())),
            ]
        };
        // About the size of a lane's state, the item a hand-off reads most.
        ddb.put_item()
            .table_name(&table)
            .set_item(Some(
                key("ITEM")
                    .into_iter()
                    .chain([
                        ("cursor".to_owned(), AttributeValue::N("12".into())),
                        ("lanes".to_owned(), AttributeValue::N("4".into())),
                        ("version".to_owned(), AttributeValue::N("99".into())),
                    ])
                    .collect(),
            ))
            .send()
            .await?;
        Ok::<_, BoxError>(move |_: u64| {
            let get = ddb
                .get_item()
                .table_name(&table)
                .set_key(Some(key("ITEM").into_iter().collect()))
                .consistent_read(true);
            async move {
                let got = get.send().await?;
                got.item.ok_or("the floor's item is missing")?;
                Ok(())
            }
        })
    })
    .await
}
