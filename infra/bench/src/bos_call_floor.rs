//! The floor under the consumer's CPU per item: what one bare HTTP call to BOS costs the
//! calling thread, with no code of ours around it. The consumer makes one such call per item
//! (BOS creates one beneficiary a call), so no change to the pipeline can bring its CPU per
//! item under this.
//!
//! The calls go from a thread of their own, on a one-thread runtime as the consumer's, to a
//! BOS simulator with the row's latency, as many at once as one consumer makes. The thread's
//! CPU time (user + system, `/proc/thread-self/schedstat`) counts the kernel's work on the
//! loopback sends too, as the consumer's does.

use crate::end_to_end::bos;
use crate::workload::BoxError;
use bos_simulator::Knobs;
use futures::StreamExt;

/// Calls made, after a warm-up that opens the connections.
const CALLS: u64 = 800;
const WARM_UP: u64 = 16;

/// CPU time of the calling thread so far, in nanoseconds.
fn thread_cpu_ns() -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let on_cpu = stat.split_whitespace().next().ok_or("empty schedstat")?;
    Ok(on_cpu.parse()?)
}

/// Client CPU per call, in µs: `CALLS` creations, `at_once` in flight, BOS at `latency_ms`.
pub async fn micros_per_call(latency_ms: u64, at_once: usize) -> Result<f64, BoxError> {
    let (_sim, url) = bos(Knobs {
        latency_ms,
        ..Knobs::default()
    })
    .await?;
    let create: reqwest::Url = format!("{url}/v1/beneficiaries").parse()?;
    let thread = std::thread::spawn(move || -> Result<f64, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime
            .block_on(calls(create, at_once))
            .map_err(|e| e.to_string())
    });
    let per_call = tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| "the calling thread panicked")??;
    Ok(per_call)
}

async fn calls(create: reqwest::Url, at_once: usize) -> Result<f64, BoxError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let call = |n: u64| {
        let (http, create) = (&http, create.clone());
        async move {
            // Distinct IBANs: a repeated one is refused as a duplicate, a cheaper answer.
            let iban = tasks_core::test_ibans::german(7_000_000 + n);
            let body =
                serde_json::json!({"name": "N", "country": "DE", "currency": "EUR", "iban": iban});
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
            Ok::<(), BoxError>(())
        }
    };
    let run = |range: std::ops::Range<u64>| {
        futures::stream::iter(range)
            .map(call)
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
    Ok(spent as f64 / 1e3 / CALLS as f64)
}
