//! Cold-start helpers shared by the three functions: built once, before the first event.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use std::time::Duration;
use tasks_core::error::Chain;
use tasks_core::trace::Trace;
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

/// Why a function refuses to start. Its `Debug` is the cause chain, since that is what the
/// process prints when `main` returns it.
#[derive(thiserror::Error)]
pub enum StartupError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// Names the secret and carries the service's answer, never a value.
    #[error("secret {name} could not be read from Secrets Manager ({name}_SECRET_ID)")]
    SecretUnreadable {
        name: String,
        #[source]
        source: Box<SdkError<GetSecretValueError>>,
    },
    #[error("secret {0} is not set ({0}_SECRET_ID or {0})")]
    SecretMissing(String),
    #[error("secret {0} is shorter than {MIN_SECRET_BYTES} bytes")]
    SecretTooShort(String),
}

impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Chain(self))
    }
}

/// A required environment variable, or a clear start-up error.
pub fn required_env(name: &str) -> Result<String, StartupError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| StartupError::MissingEnv(name.to_owned()))
}

/// The fewest bytes a secret may have: anything shorter is a placeholder, not a key.
pub const MIN_SECRET_BYTES: usize = 16;

/// A secret a function refuses to start without, read once at cold start and kept for the
/// life of the process: from Secrets Manager when `{name}_SECRET_ID` names the secret (what
/// the template sets, so the value never sits in the function's configuration), else from
/// `{name}` itself (`cargo lambda invoke`, the startup tests). Fails closed: missing, empty,
/// unreadable or shorter than [`MIN_SECRET_BYTES`] is a start-up error. A rotated secret takes
/// effect at the next cold start.
pub async fn required_secret(aws: &SdkConfig, name: &str) -> Result<Vec<u8>, StartupError> {
    let id_var = format!("{name}_SECRET_ID");
    let value = match std::env::var(&id_var).ok().filter(|v| !v.is_empty()) {
        Some(id) => aws_sdk_secretsmanager::Client::new(aws)
            .get_secret_value()
            .secret_id(&id)
            .send()
            .await
            .map_err(|e| StartupError::SecretUnreadable {
                name: name.to_owned(),
                source: Box::new(e),
            })?
            .secret_string
            .unwrap_or_default(),
        None => std::env::var(name).unwrap_or_default(),
    };
    if value.is_empty() {
        return Err(StartupError::SecretMissing(name.to_owned()));
    }
    if value.len() < MIN_SECRET_BYTES {
        return Err(StartupError::SecretTooShort(name.to_owned()));
    }
    Ok(value.into_bytes())
}

/// Keys the owner pseudonym of every log line (`LOG_PSEUDONYM_KEY`); fails closed.
pub async fn init_pseudonym_key(aws: &SdkConfig) -> Result<(), StartupError> {
    let key = required_secret(aws, "LOG_PSEUDONYM_KEY").await?;
    tasks_core::identity::set_pseudonym_key(&key);
    Ok(())
}

/// What a queue-triggered function (consumer, dead-letter) builds once at cold start, after
/// logging and the pseudonym key: the task and lane stores on `TABLE_NAME`, sharing one
/// client, and the work queue at `WORK_QUEUE_URL`.
pub struct QueueFunction {
    pub store: std::sync::Arc<crate::DynamoTaskStore>,
    pub lanes: std::sync::Arc<crate::DynamoLanes>,
    pub queue: std::sync::Arc<crate::SqsWorkQueue>,
    /// The configuration the clients were built from, for any other client the function needs.
    pub aws: SdkConfig,
}

/// What every function but the api does first at cold start: logging, the pseudonym key, the
/// AWS configuration, and the store on `TABLE_NAME`.
pub async fn start_with_store() -> Result<(SdkConfig, crate::DynamoTaskStore), StartupError> {
    init_tracing();
    let aws = aws_config().await;
    init_pseudonym_key(&aws).await?;
    let store = crate::DynamoTaskStore::from_config(&aws, required_env("TABLE_NAME")?);
    Ok((aws, store))
}

impl QueueFunction {
    pub async fn start() -> Result<Self, StartupError> {
        let (aws, store) = start_with_store().await?;
        let queue = crate::SqsWorkQueue::from_config(&aws, required_env("WORK_QUEUE_URL")?);
        Ok(Self {
            lanes: std::sync::Arc::new(store.lanes()),
            store: std::sync::Arc::new(store),
            queue: std::sync::Arc::new(queue),
            aws,
        })
    }
}

/// Lambda's trace for this invocation (its `Lambda-Runtime-Trace-Id`), recorded as the
/// `trace_id` of the current span (the invocation's, declared with `trace_id = Empty`), so that
/// every line the invocation logs carries it. Work that brings no trace of its own runs in it.
pub fn invocation_trace(context: &lambda_runtime::Context) -> Option<Trace> {
    let trace = context
        .xray_trace_id
        .as_deref()
        .and_then(Trace::from_xray_header);
    if let Some(t) = &trace {
        tracing::Span::current().record("trace_id", t.trace_id());
    }
    trace
}

/// An invocation's deadline (epoch milliseconds, as Lambda gives it) as an `Instant`.
pub fn deadline_instant(deadline_ms: u64) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    std::time::Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_fail_closed() {
        let aws = aws_config::SdkConfig::builder().build();
        let err = required_secret(&aws, "SURELY_UNSET_SECRET_FOR_THIS_TEST")
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("is not set"), "{err:?}");
    }
}
