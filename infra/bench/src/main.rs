//! `bench`: measures what design §8 asks for and prints one table, also written to
//! `docs/benchmarks.md` (or `BENCH_OUTPUT`). Run it through `scripts/bench`, which builds the
//! release binaries and starts DynamoDB Local and moto.

mod coldstart;
mod counting_proxy;
mod end_to_end;
mod in_process;
mod report;
mod scheduling;

use report::Report;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut report = Report::new();
    in_process::validation(&mut report);
    in_process::handler(&mut report).await;
    scheduling::all(&mut report).await?;
    end_to_end::requests(&mut report).await?;
    end_to_end::peak_memory(&mut report).await?;
    coldstart::cold_starts_and_sizes(&mut report).await?;
    let text = report.render();
    println!("{text}");
    let out = std::env::var("BENCH_OUTPUT").unwrap_or_else(|_| "docs/benchmarks.md".into());
    std::fs::write(&out, text)?;
    eprintln!("written to {out}");
    Ok(())
}
