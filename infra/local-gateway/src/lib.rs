//! The local gateway/runner: everything AWS does around the three functions, on loopback.
//!
//! [`LocalStack::start`] reads `template.yaml`, creates its table and queues (under a name
//! prefix) in DynamoDB Local and moto, starts each function's real binary behind its own
//! Lambda Runtime API with the environment the template gives it, serves the api function
//! over HTTP like API Gateway, and polls the queues like Lambda's event source mappings.
//! The `local-gateway` binary does this for `scripts/dev`; the integration tests do it once
//! per test, each with its own prefix.

pub mod function;
pub mod http_gateway;
pub mod poller;
pub mod resources;
pub mod runtime_api;
pub mod stream_source;
pub mod template;
pub mod ws_gateway;

use function::{FunctionConfig, FunctionPool};
use resources::{provision, resolve, Provisioned};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use template::Template;
use tokio::task::JoinHandle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub template: PathBuf,
    /// Prefix of every table and queue name this stack creates.
    pub prefix: String,
    pub dynamodb_endpoint: String,
    pub sqs_endpoint: String,
    /// Folder holding the built function binaries (`target/debug` or `target/release`).
    pub functions_dir: PathBuf,
    pub listen: SocketAddr,
    /// Template parameter values (e.g. `BosUrl`) replacing the defaults.
    pub parameters: BTreeMap<String, String>,
    /// Variables added to every function's environment, after the template's.
    pub extra_env: BTreeMap<String, String>,
    /// Development bearer token → subject (the JWT `sub` claim).
    pub tokens: HashMap<String, String>,
    /// Processes per function (Lambda's concurrency) for functions whose template sets no
    /// limit; an SQS source's `ScalingConfig.MaximumConcurrency` decides for its function.
    pub concurrency: usize,
    /// Folder for the functions' logs, one file per function; `None` prints them.
    pub log_dir: Option<PathBuf>,
    /// How soon a failed SQS message comes back (AWS: the visibility timeout).
    pub retry_delay: Duration,
    /// Documents served as they are: path → (content type, bytes).
    pub static_files: HashMap<String, (String, Vec<u8>)>,
    /// Secrets Manager secrets the template references, by name (the local stack plays Secrets
    /// Manager too).
    pub secrets: BTreeMap<String, String>,
    /// Functions (logical ids) whose queues are not polled, as if their event source mapping
    /// were disabled: messages stay in the queue (e.g. to test a DLQ redrive).
    pub paused_event_sources: Vec<String>,
}

impl StackConfig {
    /// Defaults for this repository: template at the root, emulators on their usual ports.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            template: root.join("template.yaml"),
            prefix: "local".into(),
            dynamodb_endpoint: "http://127.0.0.1:8000".into(),
            sqs_endpoint: "http://127.0.0.1:5000".into(),
            functions_dir: root.join("target/debug"),
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            parameters: BTreeMap::new(),
            // Webhook receivers on this machine (`http://127.0.0.1:…`) are allowed locally only;
            // the template never sets this.
            // The retry schedule runs a hundred times faster (5 s → 50 ms, 10 h → 6 min).
            extra_env: BTreeMap::from([
                ("WEBHOOK_ALLOW_LOOPBACK".to_owned(), "true".to_owned()),
                ("WEBHOOK_SCHEDULE_SCALE".to_owned(), "0.01".to_owned()),
            ]),
            tokens: HashMap::from([
                ("dev-token-alice".to_owned(), "alice".to_owned()),
                ("dev-token-bob".to_owned(), "bob".to_owned()),
            ]),
            concurrency: 2,
            log_dir: None,
            retry_delay: Duration::from_secs(1),
            static_files: HashMap::new(),
            paused_event_sources: Vec::new(),
            // Development values, named as such: the functions refuse to start without their
            // secrets, and only the local stack supplies these.
            secrets: BTreeMap::from([
                (
                    "background-tasks/page-token-secret".to_owned(),
                    "local-development-only-page-tokens".to_owned(),
                ),
                (
                    "background-tasks/log-pseudonym-key".to_owned(),
                    "local-development-only-pseudonyms".to_owned(),
                ),
            ]),
        }
    }
}

pub struct LocalStack {
    pub addr: SocketAddr,
    pub provisioned: Provisioned,
    pools: Vec<Arc<FunctionPool>>,
    tasks: Vec<JoinHandle<()>>,
    /// Stream readers run on threads of their own (see `stream_source::spawn`).
    readers: Vec<stream_source::Reader>,
    websockets: Vec<Arc<ws_gateway::WsGateway>>,
}

/// Where the local gateway publishes the local identity provider's keys (none).
pub const LOCAL_JWKS_PATH: &str = "/.local-identity/jwks.json";

/// This machine's CA bundle, where distributions usually keep it.
pub fn local_ca_bundle() -> Option<String> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_owned)
}

/// The SDK configuration for the emulators: fixed fake credentials, never a real account.
async fn emulator_config() -> aws_config::SdkConfig {
    let creds =
        aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "local-gateway");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .load()
        .await
}

/// SDK clients for the emulators.
pub async fn emulator_clients(
    dynamodb: &str,
    sqs: &str,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let base = emulator_config().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&base)
            .endpoint_url(dynamodb)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&base)
            .endpoint_url(sqs)
            .build(),
    );
    (ddb, sqs)
}

/// A Secrets Manager client for moto (which plays every service on one endpoint).
pub async fn secrets_client(moto: &str) -> aws_sdk_secretsmanager::Client {
    let base = emulator_config().await;
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&base)
            .endpoint_url(moto)
            .build(),
    )
}

/// A DynamoDB Streams client for DynamoDB Local (which serves streams on its own endpoint).
pub async fn streams_client(dynamodb: &str) -> aws_sdk_dynamodbstreams::Client {
    let base = emulator_config().await;
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&base)
            .endpoint_url(dynamodb)
            .build(),
    )
}

impl LocalStack {
    pub async fn start(config: StackConfig) -> Result<Self, BoxError> {
        let template = Template::load(&config.template)?;
        // Bound first: the functions' environment names this address (the WebSocket API's
        // management endpoint, the issuer's keys).
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (ddb, sqs) = emulator_clients(&config.dynamodb_endpoint, &config.sqs_endpoint).await;
        let mut parameters = config.parameters.clone();
        // The local identity provider publishes no keys: only development tokens sign in.
        parameters
            .entry("JwtJwksUrl".to_owned())
            .or_insert_with(|| format!("http://{addr}{LOCAL_JWKS_PATH}"));
        let mut provisioned = provision(
            &template,
            &config.prefix,
            &ddb,
            &sqs,
            &parameters,
            &config.secrets,
        )
        .await?;
        for api in &template.websocket_apis {
            provisioned
                .websocket_apis
                .insert(api.logical_id.clone(), format!("http://{addr}"));
        }
        let authorizers: Vec<&str> = template
            .websocket_apis
            .iter()
            .flat_map(|api| api.routes.iter().filter_map(|r| r.authorizer.as_deref()))
            .collect();
        let dev_tokens = config
            .tokens
            .iter()
            .map(|(token, subject)| format!("{token}={subject}"))
            .collect::<Vec<_>>()
            .join(",");
        resources::store_secrets(
            &secrets_client(&config.sqs_endpoint).await,
            &provisioned.secrets,
        )
        .await?;

        let mut pools = Vec::new();
        let mut tasks = Vec::new();
        let mut readers = Vec::new();
        let mut api = None;
        let mut routes = Vec::new();
        let mut by_logical_id: HashMap<String, Arc<FunctionPool>> = HashMap::new();
        // Stream ARN → the functions it feeds: one reader per stream serves them all.
        let mut stream_consumers: BTreeMap<String, Vec<stream_source::Consumer>> = BTreeMap::new();
        for f in &template.functions {
            let mut environment = BTreeMap::new();
            for (k, expr) in &f.environment {
                environment.insert(k.clone(), resolve(expr, &provisioned)?);
            }
            environment.extend([
                ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
                ("AWS_DEFAULT_REGION".to_owned(), "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID".to_owned(), "local".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "local".to_owned()),
                (
                    "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
                    config.dynamodb_endpoint.clone(),
                ),
                (
                    "AWS_ENDPOINT_URL_SQS".to_owned(),
                    config.sqs_endpoint.clone(),
                ),
                // moto plays Secrets Manager too, on the same port.
                (
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
                    config.sqs_endpoint.clone(),
                ),
            ]);
            // The template names Lambda's CA bundle (Amazon Linux); on this machine it may live
            // elsewhere, so point at whichever bundle exists here.
            if let Some(path) = environment.get("SSL_CERT_FILE").cloned() {
                if !std::path::Path::new(&path).exists() {
                    match local_ca_bundle() {
                        Some(local) => environment.insert("SSL_CERT_FILE".to_owned(), local),
                        None => environment.remove("SSL_CERT_FILE"),
                    };
                }
            }
            if let Some(format) = &f.log_format {
                environment.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), format.clone());
            }
            if let Some(level) = &f.log_level {
                environment.insert("AWS_LAMBDA_LOG_LEVEL".to_owned(), level.clone());
            }
            environment.extend(config.extra_env.clone());
            // As the HTTP API's local authorizer does, the WebSocket authorizer accepts the
            // development tokens; only the local gateway ever gives them.
            if authorizers.contains(&f.logical_id.as_str()) {
                environment.insert("LOCAL_DEV_TOKENS".to_owned(), dev_tokens.clone());
            }
            // As in AWS, an SQS source's MaximumConcurrency caps its function's invocations:
            // that many processes, and that many pollers feeding them.
            let mut concurrency = config.concurrency.max(1);
            for source in &f.sqs_sources {
                if let Some(max) = &source.max_concurrency {
                    concurrency = resolve(max, &provisioned)?.parse().map_err(|_| {
                        format!("{}: MaximumConcurrency is not a number", f.logical_id)
                    })?;
                }
            }
            let pool = FunctionPool::start(FunctionConfig {
                name: format!("{}-{}", config.prefix, f.logical_id),
                binary: config.functions_dir.join(&f.binary),
                environment,
                timeout: Duration::from_secs(f.timeout_secs),
                memory_mb: f.memory_mb,
                concurrency,
                log_file: config
                    .log_dir
                    .as_ref()
                    .map(|d| d.join(format!("{}.log", f.binary))),
            })
            .await?;
            let paused = config.paused_event_sources.contains(&f.logical_id);
            for source in f.sqs_sources.iter().filter(|_| !paused) {
                let queue = provisioned
                    .queues
                    .get(&source.queue_logical_id)
                    .ok_or_else(|| {
                        format!(
                            "{}: unknown queue {}",
                            f.logical_id, source.queue_logical_id
                        )
                    })?;
                // One poller per process: Lambda scales pollers with concurrency likewise.
                for _ in 0..concurrency {
                    tasks.push(tokio::spawn(poller::run(
                        sqs.clone(),
                        Arc::clone(&pool),
                        poller::PollerConfig {
                            queue_url: queue.url.clone(),
                            queue_arn: queue.arn.clone(),
                            batch_size: source.batch_size,
                            report_batch_item_failures: source.report_batch_item_failures,
                            retry_delay: config.retry_delay,
                            function_sets_visibility: f.sets_visibility,
                        },
                    )));
                }
            }
            for source in f.stream_sources.iter().filter(|_| !paused) {
                let stream_arn = provisioned
                    .streams
                    .get(&source.table_logical_id)
                    .ok_or_else(|| {
                        format!(
                            "{}: table {} has no stream",
                            f.logical_id, source.table_logical_id
                        )
                    })?
                    .clone();
                stream_consumers
                    .entry(stream_arn)
                    .or_default()
                    .push(stream_source::Consumer {
                        function: Arc::clone(&pool),
                        config: stream_source::StreamConfig {
                            batch_size: source.batch_size,
                            report_batch_item_failures: source.report_batch_item_failures,
                            filters: source.filters.clone(),
                            batching_window: source.batching_window,
                        },
                    });
            }
            if !f.http_routes.is_empty() {
                routes.extend(f.http_routes.iter().cloned());
                api = Some(Arc::clone(&pool));
            }
            by_logical_id.insert(f.logical_id.clone(), Arc::clone(&pool));
            pools.push(pool);
        }
        for (stream_arn, consumers) in stream_consumers {
            readers.push(stream_source::spawn(
                config.dynamodb_endpoint.clone(),
                stream_arn,
                consumers,
            )?);
        }
        let api = api.ok_or("the template has no function with HttpApi events")?;
        let mut router = axum::Router::new().route(
            LOCAL_JWKS_PATH,
            axum::routing::get(|| async { axum::Json(serde_json::json!({"keys": []})) }),
        );
        let mut websockets = Vec::new();
        for spec in &template.websocket_apis {
            let pool_of = |id: &str| {
                by_logical_id
                    .get(id)
                    .cloned()
                    .ok_or_else(|| format!("{}: unknown function {id}", spec.logical_id))
            };
            let mut routes = HashMap::new();
            let mut authorizer = None;
            for route in &spec.routes {
                routes.insert(route.key.clone(), pool_of(&route.function)?);
                if let Some(id) = &route.authorizer {
                    authorizer = Some(pool_of(id)?);
                }
            }
            let ws = Arc::new(ws_gateway::WsGateway::new(spec.clone(), routes, authorizer));
            router = router.merge(ws_gateway::router(Arc::clone(&ws)));
            websockets.push(ws);
        }
        let gateway = Arc::new(http_gateway::Gateway {
            api,
            routes,
            tokens: config.tokens.clone(),
            static_files: config.static_files.clone(),
        });
        let router = router.merge(http_gateway::router(gateway));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "gateway stopped");
            }
        }));
        Ok(Self {
            addr,
            provisioned,
            pools,
            tasks,
            readers,
            websockets,
        })
    }

    /// The WebSocket APIs played, in template order.
    pub fn websockets(&self) -> &[Arc<ws_gateway::WsGateway>] {
        &self.websockets
    }

    /// `ws://…/{stage}` of the template's first WebSocket API.
    pub fn websocket_url(&self) -> Option<String> {
        let api = &self.websockets.first()?.api;
        Some(format!("ws://{}/{}", self.addr, api.stage))
    }

    /// Function name (`{prefix}-{LogicalId}`) → ids of its running processes.
    pub fn function_pids(&self) -> Vec<(String, Vec<u32>)> {
        self.pools
            .iter()
            .map(|p| (p.name().to_owned(), p.pids()))
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        for r in &self.readers {
            r.stop();
        }
        for p in &self.pools {
            p.stop();
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
    }
}
