//! `bench`: measures what design §8 asks for and prints one table, also written to
//! `docs/benchmarks.md` (or `BENCH_OUTPUT`). Run it through `scripts/bench`, which builds the
//! release binaries and starts DynamoDB Local and moto.

mod call_floors;
mod coldstart;
mod counting_proxy;
mod cpu;
mod end_to_end;
mod failing_well;
mod in_process;
mod live_progress;
mod report;
mod scheduling;
mod shipped;
mod uploads;
mod webhooks;
mod workload;

use report::Report;

/// Whether a section runs: all of them unless `BENCH_ONLY` names some (comma-separated:
/// `in_process`, `scheduling`, `requests`, `memory`, `cold_start`, `webhooks`,
/// `live_progress`, `failing_well`, `uploads`).
fn wanted(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut report = Report::new();
    if let Ok(overrides) = std::env::var("BENCH_PARAMETERS") {
        report.note(format!(
            "NOT the template's settings: parameters overridden with BENCH_PARAMETERS={overrides}."
        ));
    }
    if let Ok(dir) = std::env::var("BENCH_FUNCTIONS_DIR") {
        report.note(format!(
            "NOT the release build as scripts/bench makes it: function binaries from \
             BENCH_FUNCTIONS_DIR={dir}."
        ));
    }
    if wanted("in_process") {
        in_process::validation(&mut report)?;
        in_process::handler(&mut report).await?;
    }
    if wanted("scheduling") {
        scheduling::all(&mut report).await?;
    }
    if wanted("failing_well") {
        failing_well::all(&mut report).await?;
    }
    if wanted("uploads") {
        uploads::all(&mut report).await?;
    }
    if wanted("requests") {
        end_to_end::requests(&mut report).await?;
    }
    if wanted("memory") {
        end_to_end::peak_memory(&mut report).await?;
    }
    if wanted("webhooks") {
        webhooks::latency(&mut report).await?;
    }
    if wanted("live_progress") {
        live_progress::latency_and_cost(&mut report).await?;
    }
    if wanted("cold_start") {
        coldstart::cold_starts_and_sizes(&mut report).await?;
    }
    let text = report.render();
    println!("{text}");
    // A partial run never replaces the committed table.
    let default_out = std::env::var("BENCH_ONLY")
        .is_err()
        .then(|| "docs/benchmarks.md".to_owned());
    let chosen = std::env::var("BENCH_OUTPUT").ok().filter(|o| !o.is_empty());
    if let Some(out) = chosen.or(default_out) {
        let previous = std::fs::read_to_string(&out).unwrap_or_default();
        std::fs::write(&out, report::with_kept_notes(&text, &previous))?;
        eprintln!("written to {out}");
    }
    Ok(())
}
