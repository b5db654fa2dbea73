//! `bos-simulator`: serves the simulator on `BOS_SIM_ADDR` (default 127.0.0.1:3100).
//! Knobs at start: `BOS_SIM_LATENCY_MS`, `BOS_SIM_JITTER_MS`, `BOS_SIM_FAILURE_RATE`; all of
//! them, and the other faults, at run time with `PUT /admin/config`.

use bos_simulator::{Knobs, Simulator, EXISTING_IBAN};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let addr = std::env::var("BOS_SIM_ADDR").unwrap_or_else(|_| "127.0.0.1:3100".into());
    let knobs = Knobs {
        latency_ms: env("BOS_SIM_LATENCY_MS", 0),
        jitter_ms: env("BOS_SIM_JITTER_MS", 0),
        failure_rate: env("BOS_SIM_FAILURE_RATE", 0.0),
        ..Knobs::default()
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, ?knobs, "BOS simulator listening");
    Simulator::new(knobs, &[EXISTING_IBAN])
        .serve(listener)
        .await
}
