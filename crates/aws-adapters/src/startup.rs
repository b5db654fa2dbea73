//! Cold-start helpers shared by the three functions: built once, before the first event.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Logs on stdout, one line per event, honouring Lambda's advanced logging controls: JSON
/// objects (the default, and what `LoggingConfig.LogFormat: JSON` asks for) carrying every
/// enclosing span's fields (request id, task id, owner id), or plain text when
/// `AWS_LAMBDA_LOG_FORMAT=Text`. The level follows `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`,
/// then `info`. Lambda stamps the time itself, so lines carry none.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    if text {
        builder.init();
    } else {
        builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init();
    }
}

/// The SDK configuration with bounded time-outs: a queue or table that does not answer
/// becomes an error within seconds, never a hung invocation.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        )
        .load()
        .await
}

/// A required environment variable, or a clear start-up error.
pub fn required_env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("environment variable {name} is not set"))
}
