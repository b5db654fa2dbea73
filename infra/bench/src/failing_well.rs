//! Failing well (issue 23), measured on the local stack with the release binaries and the
//! template's own settings:
//! - the BOS calls an all-refused 10,000-item task spends when it tolerates 5 % failures;
//! - a 60-second BOS outage in the middle of a 10,000-item task: the calls BOS sees while it is
//!   down, and the time from its recovery to full speed (BOS's call rate back to 90 % of what
//!   it was before the outage, in a one-second window).

use crate::end_to_end::wait_final;
use crate::report::Report;
use crate::scheduling::Bench;
use crate::workload::{items, BoxError};
use bos_simulator::Knobs;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LATENCY_MS: u64 = 50;
const ITEMS: usize = 10_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A stack for one scenario (the scheduling benchmarks' [`Bench`]) and what this section asks
/// of it.
struct Run {
    bench: Bench,
}

impl Run {
    async fn start(name: &str, knobs: Knobs) -> Result<Self, BoxError> {
        let bench = Bench::start_with(name, knobs).await?;
        Ok(Self { bench })
    }

    async fn post(&self, query: &str) -> Result<String, BoxError> {
        let res = reqwest::Client::new()
            .post(format!(
                "{}/tasks/beneficiaries-import{query}",
                self.bench.stack.url()
            ))
            .bearer_auth("dev-token-alice")
            .header("content-type", "application/json")
            .body(items(ITEMS, 7_000_000).to_string())
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if status != 202 {
            return Err(format!("POST answered {status}: {body}").into());
        }
        Ok(body["task_id"].as_str().unwrap_or_default().to_owned())
    }

    async fn task(&self, id: &str) -> Result<Value, BoxError> {
        Ok(reqwest::Client::new()
            .get(format!(
                "{}/tasks/beneficiaries-import/{id}",
                self.bench.stack.url()
            ))
            .bearer_auth("dev-token-alice")
            .send()
            .await?
            .json()
            .await?)
    }
}

pub async fn all(report: &mut Report) -> Result<(), BoxError> {
    refused_file(report).await?;
    outage(report).await
}

async fn refused_file(report: &mut Report) -> Result<(), BoxError> {
    let run = Run::start(
        "bench-refused",
        Knobs {
            latency_ms: LATENCY_MS,
            refuse_rate: 1.0,
            ..Knobs::default()
        },
    )
    .await?;
    let id = run.post("?tolerated_failure_percent=5").await?;
    wait_final(&run.bench.ddb, &run.bench.table, &id).await?;
    let task = run.task(&id).await?;
    let calls = run.bench.sim.stats().requests;
    // 5 % of 10,000 is 500 failures tolerated; the 501st stops it, and the chunks consumers
    // had in work then still finish: at most every consumer's batch of chunks.
    let s = crate::scheduling::shipped()?;
    let in_work = s.consumers * u64::from(s.batch_size) * s.chunk_size as u64;
    let bound = 501 + in_work;
    report.check(
        "failing well: BOS calls spent on an all-refused 10,000-item task tolerating 5 %",
        format!(
            "{calls} calls; {} failed, {} not attempted, status {}",
            task["progress"]["failed"], task["progress"]["not_attempted"], task["status"]
        ),
        format!(
            "≤ {bound} (501 + what consumers had in work: {} × {} chunks of {})",
            s.consumers, s.batch_size, s.chunk_size
        ),
        calls <= bound && task["failure_reason"] == "tolerated_failures_exceeded",
    );
    run.bench.stack.stop();
    Ok(())
}

async fn outage(report: &mut Report) -> Result<(), BoxError> {
    let healthy = Knobs {
        latency_ms: LATENCY_MS,
        ..Knobs::default()
    };
    let run = Run::start("bench-outage", healthy.clone()).await?;
    let id = run.post("").await?;
    // Down once a third of the task is done.
    loop {
        let t = run.task(&id).await?;
        if t["progress"]["processed"].as_u64().unwrap_or(0) >= 3_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down = now_ms();
    run.bench.sim.set_knobs(Knobs {
        failure_rate: 1.0,
        failure_statuses: vec![503],
        ..healthy.clone()
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    let up = now_ms();
    run.bench.sim.set_knobs(healthy);
    wait_final(&run.bench.ddb, &run.bench.table, &id).await?;
    let task = run.task(&id).await?;

    let during = run.bench.sim.calls_between(down, up);
    let probes = run.bench.sim.calls_between(down + 5_000, up).len();
    // Full speed: BOS's call rate over the 2 s before the outage; recovered when a 1 s window
    // after it reaches 90 % of that.
    let before = run.bench.sim.calls_between(down - 2_000, down).len() as f64 / 2.0;
    let after = run.bench.sim.calls_between(up, up + 30_000);
    let recovered_ms = (0..30_000u64).step_by(50).find(|offset| {
        let from = up + offset;
        let in_window = after
            .iter()
            .filter(|at| (from..from + 1_000).contains(at))
            .count();
        in_window as f64 >= 0.9 * before
    });
    let failed = task["progress"]["failed"].as_u64().unwrap_or(u64::MAX);
    let created = run.bench.sim.stats().creations;
    report.check(
        "failing well: a 60 s BOS outage mid 10,000-item task (BOS at 50 ms)",
        format!(
            "{} BOS calls while down ({probes} of them probes after its first 5 s); {failed} failed; {created} created",
            during.len()
        ),
        "0 failed, each created once; only probes while open (≤ 1 per 2 s)",
        failed == 0 && created == ITEMS as u64 && probes <= 28,
    );
    report.info(
        "failing well: from BOS's recovery to full speed (1 s window at 90 % of the call rate before the outage)",
        match recovered_ms {
            Some(ms) => format!("{:.1} s ({before:.0} calls/s before)", (ms + 1_000) as f64 / 1e3),
            None => format!("not within 30 s ({before:.0} calls/s before)"),
        },
    );
    run.bench.stack.stop();
    Ok(())
}
