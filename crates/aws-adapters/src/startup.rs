//! Cold-start helpers shared by the functions: what is checked before the first poll of the
//! Runtime API, and what is built while it waits ([`Warming`]).

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
    sdk_defaults().load().await
}

/// What [`aws_config`] loads before it reads the environment: its behaviour version and
/// time-outs. The bench builds its clients from it to measure what a function's requests cost.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(15))
            .build(),
    )
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

/// Where a secret a function refuses to start without comes from: from Secrets Manager when
/// `{name}_SECRET_ID` names the secret (what the template sets, so the value never sits in the
/// function's configuration), else from `{name}` itself (`cargo lambda invoke`, the startup
/// tests). Checked before the first poll ([`secret_source`]); read off that path
/// ([`SecretSource::read`]).
pub enum SecretSource {
    /// The value, from the environment, already checked.
    Environment(Vec<u8>),
    /// The secret's id in Secrets Manager, for the secret called `name`.
    Manager { name: String, id: String },
}

/// Where the secret `name` comes from. Fails closed: a value in the environment that is
/// missing, empty or shorter than [`MIN_SECRET_BYTES`] is a start-up error here, before the
/// first poll; one from Secrets Manager is checked the same way when read.
pub fn secret_source(name: &str) -> Result<SecretSource, StartupError> {
    match std::env::var(format!("{name}_SECRET_ID"))
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(id) => Ok(SecretSource::Manager {
            name: name.to_owned(),
            id,
        }),
        None => {
            checked(name, std::env::var(name).unwrap_or_default()).map(SecretSource::Environment)
        }
    }
}

fn checked(name: &str, value: String) -> Result<Vec<u8>, StartupError> {
    if value.is_empty() {
        return Err(StartupError::SecretMissing(name.to_owned()));
    }
    if value.len() < MIN_SECRET_BYTES {
        return Err(StartupError::SecretTooShort(name.to_owned()));
    }
    Ok(value.into_bytes())
}

impl SecretSource {
    /// The secret's value: read once per execution environment and kept for the life of the
    /// process (a rotated secret takes effect at the next cold start). Unreadable, empty or
    /// too short is an error: the function serves nothing without it.
    pub async fn read(self, aws: &SdkConfig) -> Result<Vec<u8>, StartupError> {
        let (name, id) = match self {
            Self::Environment(value) => return Ok(value),
            Self::Manager { name, id } => (name, id),
        };
        let value = aws_sdk_secretsmanager::Client::new(aws)
            .get_secret_value()
            .secret_id(&id)
            .send()
            .await
            .map_err(|e| StartupError::SecretUnreadable {
                name: name.clone(),
                source: Box::new(e),
            })?
            .secret_string
            .unwrap_or_default();
        checked(&name, value)
    }
}

/// Keys the owner pseudonym of every log line with the secret `LOG_PSEUDONYM_KEY`.
pub async fn init_pseudonym_key(aws: &SdkConfig, key: SecretSource) -> Result<(), StartupError> {
    let key = key.read(aws).await?;
    tasks_core::identity::set_pseudonym_key(&key);
    Ok(())
}

/// What every function but the api and the WebSocket authorizer checks before its first poll:
/// logging, its pseudonym key (`LOG_PSEUDONYM_KEY`) and its table (`TABLE_NAME`).
pub struct StoreStart {
    pseudonym_key: SecretSource,
    table: String,
}

impl StoreStart {
    pub fn from_env() -> Result<Self, StartupError> {
        init_tracing();
        Ok(Self {
            pseudonym_key: secret_source("LOG_PSEUDONYM_KEY")?,
            table: required_env("TABLE_NAME")?,
        })
    }

    /// The part that talks to AWS, run while the runtime makes its first poll ([`Warming`]):
    /// the SDK configuration, the pseudonym key, and the store on the table.
    pub async fn connect(self) -> Result<(SdkConfig, crate::DynamoTaskStore), StartupError> {
        let aws = aws_config().await;
        init_pseudonym_key(&aws, self.pseudonym_key).await?;
        let store = crate::DynamoTaskStore::from_config(&aws, self.table);
        Ok((aws, store))
    }
}

/// What a queue-triggered function (consumer, dead-letter, ingest) builds once at cold
/// start: the task and lane stores on `TABLE_NAME`, sharing one client, and the work queue at
/// `WORK_QUEUE_URL`.
pub struct QueueFunction {
    pub store: std::sync::Arc<crate::DynamoTaskStore>,
    pub lanes: std::sync::Arc<crate::DynamoLanes>,
    pub queue: std::sync::Arc<crate::SqsWorkQueue>,
    /// The configuration the clients were built from, for any other client the function needs.
    pub aws: SdkConfig,
}

/// A queue-triggered function's start: checked before the first poll, connected off it.
pub struct QueueStart {
    store: StoreStart,
    queue_url: String,
}

impl QueueFunction {
    pub fn from_env() -> Result<QueueStart, StartupError> {
        Ok(QueueStart {
            store: StoreStart::from_env()?,
            queue_url: required_env("WORK_QUEUE_URL")?,
        })
    }
}

impl QueueStart {
    pub async fn connect(self) -> Result<QueueFunction, StartupError> {
        let (aws, store) = self.store.connect().await?;
        let queue = crate::SqsWorkQueue::from_config(&aws, self.queue_url);
        Ok(QueueFunction {
            lanes: std::sync::Arc::new(store.lanes()),
            store: std::sync::Arc::new(store),
            queue: std::sync::Arc::new(queue),
            aws,
        })
    }
}

/// What a function needs before it can serve, built *while* the runtime makes its first poll
/// of the Runtime API rather than before it: the AWS SDK's configuration, its clients, the
/// secrets read from Secrets Manager and the BOS client's TLS set-up overlap the wait for the
/// first event instead of delaying it. Each invocation awaits it (at once, once it is built).
///
/// Fails closed: if the set-up fails, the process prints why and exits, as a failed
/// initialisation does, so nothing is ever served without its secrets. Lambda then reports the
/// invocation failed and starts a fresh environment.
pub struct Warming<T> {
    ready: futures::future::Shared<futures::future::BoxFuture<'static, std::sync::Arc<T>>>,
}

impl<T> Clone for Warming<T> {
    fn clone(&self) -> Self {
        Self {
            ready: self.ready.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> Warming<T> {
    /// Starts `set_up` at once, on a thread of its own.
    ///
    /// Not as a task of the runtime: the set-up is mostly work for the CPU (the CA bundle
    /// parsed, the SDK's configuration resolved, clients built), and as a task it held the
    /// thread that was to send the first poll until its first `await`. On a blocking thread
    /// it only needs the runtime for its I/O, which the runtime's own thread keeps driving
    /// (`Handle::block_on` relies on that), so the poll goes out while it runs.
    ///
    /// Hence every function runs a one-thread runtime (`current_thread`): Lambda gives 128 to
    /// 512 MB a fraction of one vCPU, and a pool of worker threads would only contend with the
    /// set-up for it before the first poll (cold starts in docs/benchmarks.md, decisions in
    /// docs/decisions.md, issue 25).
    pub fn start<E, F>(set_up: F) -> Self
    where
        E: std::fmt::Debug + Send + 'static,
        F: std::future::Future<Output = Result<T, E>> + Send + 'static,
    {
        use futures::FutureExt;
        let runtime = tokio::runtime::Handle::current();
        let built = tokio::task::spawn_blocking(move || runtime.block_on(set_up));
        let ready = async move {
            match built.await {
                Ok(Ok(ready)) => std::sync::Arc::new(ready),
                Ok(Err(e)) => exit_unready(format!("{e:?}")),
                Err(e) => exit_unready(format!("the set-up did not finish: {e}")),
            }
        }
        .boxed()
        .shared();
        // Watched from the start, so a failure ends the process even before the first event.
        tokio::spawn(ready.clone());
        Self { ready }
    }

    /// What the set-up built, once it is.
    pub async fn get(&self) -> std::sync::Arc<T> {
        self.ready.clone().await
    }

    /// What the runtime's loop ended with; but a failed set-up, if that is what happened, is
    /// the cause worth reporting (a runtime loop that stops at once would otherwise hide it).
    pub async fn finish<R>(self, served: R) -> R {
        self.get().await;
        served
    }

    /// Runs the Lambda runtime (`lambda_runtime::run`) with `handle`, which gets what the
    /// set-up built, once it is, and each event.
    pub async fn serve<A, R, B, S, D, E, F, Fut>(
        self,
        handle: F,
    ) -> Result<(), lambda_runtime::Error>
    where
        F: Fn(std::sync::Arc<T>, lambda_runtime::LambdaEvent<A>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = R>,
        A: for<'de> serde::Deserialize<'de> + Send + 'static,
        R: lambda_runtime::IntoFunctionResponse<B, S>,
        B: serde::Serialize,
        S: futures::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
        D: Into<bytes::Bytes> + Send,
        E: Into<lambda_runtime::Error> + Send + std::fmt::Debug,
    {
        let handle = std::sync::Arc::new(handle);
        let serving = self.clone();
        let served = lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<A>| {
                let (ready, handle) = (serving.clone(), handle.clone());
                async move { Ok::<R, lambda_runtime::Error>(handle(ready.get().await, event).await) }
            },
        ))
        .await;
        self.finish(served).await
    }
}

/// Ends a process whose set-up failed, saying why as `main` returning the error would.
fn exit_unready(why: String) -> ! {
    eprintln!("Error: {why}");
    std::process::exit(1)
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
    async fn what_warms_is_built_once_and_shared() {
        // Given a set-up that counts its runs
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let warming = Warming::start(async move {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, StartupError>("ready")
        });

        // When two invocations, on two clones, await it
        let other = warming.clone();
        let (a, b) = tokio::join!(warming.get(), other.get());

        // Then both got the one value, built once
        assert_eq!((*a, *b), ("ready", "ready"));
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(warming.finish(7).await, 7);
    }

    #[test]
    fn a_secret_in_the_environment_is_checked_before_the_first_poll() {
        // A secret id wins over a value, and is read later; a short value is refused now.
        std::env::set_var("WARMING_TEST_SECRET_SECRET_ID", "some/id");
        assert!(matches!(
            secret_source("WARMING_TEST_SECRET"),
            Ok(SecretSource::Manager { .. })
        ));
        std::env::remove_var("WARMING_TEST_SECRET_SECRET_ID");
        std::env::set_var("WARMING_TEST_SECRET", "short");
        assert!(matches!(
            secret_source("WARMING_TEST_SECRET"),
            Err(StartupError::SecretTooShort(_))
        ));
        std::env::remove_var("WARMING_TEST_SECRET");
    }

    #[test]
    fn secrets_fail_closed() {
        let Err(err) = secret_source("SURELY_UNSET_SECRET_FOR_THIS_TEST") else {
            panic!("an unset secret was accepted");
        };
        assert!(format!("{err:?}").contains("is not set"), "{err:?}");
    }
}
