//! How [`crate::LocalStack::start`] wires each function of the template: its environment as
//! Lambda would set it, its processes, the pollers of its queues, the stream readers it is fed
//! by, and the HTTP and WebSocket routes that invoke it.

use crate::function::{FunctionConfig, FunctionPool};
use crate::resources::{resolve, Provisioned};
use crate::template::{FunctionSpec, Template};
use crate::{local_ca_bundle, poller, stream_source, ws_gateway, BoxError, StackConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// What starting the functions builds up, function by function.
pub(crate) struct Wiring<'a> {
    config: &'a StackConfig,
    provisioned: &'a Provisioned,
    sqs: aws_sdk_sqs::Client,
    /// Logical ids of the WebSocket authorizers, which accept the development tokens.
    authorizers: Vec<&'a str>,
    pub pools: Vec<Arc<FunctionPool>>,
    pub tasks: Vec<JoinHandle<()>>,
    /// The function serving the HTTP API, and its routes.
    pub api: Option<Arc<FunctionPool>>,
    pub routes: Vec<crate::template::HttpRoute>,
    pub by_logical_id: HashMap<String, Arc<FunctionPool>>,
    /// Stream ARN → the functions it feeds: one reader per stream serves them all.
    pub stream_consumers: BTreeMap<String, Vec<stream_source::Consumer>>,
}

impl<'a> Wiring<'a> {
    pub fn new(
        config: &'a StackConfig,
        template: &'a Template,
        provisioned: &'a Provisioned,
        sqs: aws_sdk_sqs::Client,
    ) -> Self {
        let authorizers = template
            .websocket_apis
            .iter()
            .flat_map(|api| api.routes.iter().filter_map(|r| r.authorizer.as_deref()))
            .collect();
        Self {
            config,
            provisioned,
            sqs,
            authorizers,
            pools: Vec::new(),
            tasks: Vec::new(),
            api: None,
            routes: Vec::new(),
            by_logical_id: HashMap::new(),
            stream_consumers: BTreeMap::new(),
        }
    }

    /// Starts `f`'s processes and connects its event sources.
    pub async fn start_function(&mut self, f: &FunctionSpec) -> Result<(), BoxError> {
        let config = self.config;
        let concurrency = self.concurrency(f)?;
        let pool = FunctionPool::start(FunctionConfig {
            name: format!("{}-{}", config.prefix, f.logical_id),
            binary: config.functions_dir.join(&f.binary),
            environment: self.environment(f)?,
            timeout: Duration::from_secs(f.timeout_secs),
            memory_mb: f.memory_mb,
            concurrency,
            log_file: config
                .log_dir
                .as_ref()
                .map(|d| d.join(format!("{}.log", f.binary))),
        })
        .await?;
        if !config.paused_event_sources.contains(&f.logical_id) {
            self.poll_queues(f, &pool, concurrency)?;
            self.feed_streams(f, &pool)?;
        }
        if !f.http_routes.is_empty() {
            self.routes.extend(f.http_routes.iter().cloned());
            self.api = Some(Arc::clone(&pool));
        }
        self.by_logical_id
            .insert(f.logical_id.clone(), Arc::clone(&pool));
        self.pools.push(pool);
        Ok(())
    }

    /// The template's environment, resolved, with what Lambda adds and what runs it here.
    fn environment(&self, f: &FunctionSpec) -> Result<BTreeMap<String, String>, BoxError> {
        let config = self.config;
        let mut environment = BTreeMap::new();
        for (k, expr) in &f.environment {
            environment.insert(k.clone(), resolve(expr, self.provisioned)?);
        }
        let (ddb, moto) = (&config.dynamodb_endpoint, &config.sqs_endpoint);
        environment.extend(
            [
                ("AWS_REGION", "us-east-1"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "local"),
                ("AWS_SECRET_ACCESS_KEY", "local"),
                ("AWS_ENDPOINT_URL_DYNAMODB", ddb),
                ("AWS_ENDPOINT_URL_SQS", moto),
                // moto plays S3 too (path-style addresses: `aws_adapters::s3_files`).
                ("AWS_ENDPOINT_URL_S3", moto),
                // moto plays Secrets Manager too, on the same port.
                ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
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
        if self.authorizers.contains(&f.logical_id.as_str()) {
            let tokens: Vec<String> = config
                .tokens
                .iter()
                .map(|(token, subject)| format!("{token}={subject}"))
                .collect();
            environment.insert("LOCAL_DEV_TOKENS".to_owned(), tokens.join(","));
        }
        // The console offers them as sign-in buttons, locally only.
        if !f.http_routes.is_empty() {
            let tokens: Vec<String> = config
                .tokens
                .iter()
                .map(|(token, subject)| format!("{token}={subject}"))
                .collect();
            environment.insert("CONSOLE_DEV_TOKENS".to_owned(), tokens.join(","));
        }
        Ok(environment)
    }

    /// As in AWS, an SQS source's MaximumConcurrency caps its function's invocations: that
    /// many processes, and that many pollers feeding them.
    fn concurrency(&self, f: &FunctionSpec) -> Result<usize, BoxError> {
        let mut concurrency = self.config.concurrency.max(1);
        for max in f
            .sqs_sources
            .iter()
            .filter_map(|s| s.max_concurrency.as_ref())
        {
            concurrency = resolve(max, self.provisioned)?
                .parse()
                .map_err(|_| format!("{}: MaximumConcurrency is not a number", f.logical_id))?;
        }
        Ok(concurrency)
    }

    fn poll_queues(
        &mut self,
        f: &FunctionSpec,
        pool: &Arc<FunctionPool>,
        concurrency: usize,
    ) -> Result<(), BoxError> {
        for source in &f.sqs_sources {
            let queue = self
                .provisioned
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
                self.tasks.push(tokio::spawn(poller::run(
                    self.sqs.clone(),
                    Arc::clone(pool),
                    poller::PollerConfig {
                        queue_url: queue.url.clone(),
                        queue_arn: queue.arn.clone(),
                        batch_size: source.batch_size,
                        report_batch_item_failures: source.report_batch_item_failures,
                        retry_delay: self.config.retry_delay,
                        function_sets_visibility: f.sets_visibility,
                    },
                )));
            }
        }
        Ok(())
    }

    fn feed_streams(&mut self, f: &FunctionSpec, pool: &Arc<FunctionPool>) -> Result<(), BoxError> {
        for source in &f.stream_sources {
            let table = &source.table_logical_id;
            let stream_arn = self
                .provisioned
                .streams
                .get(table)
                .ok_or_else(|| format!("{}: table {table} has no stream", f.logical_id))?;
            self.stream_consumers
                .entry(stream_arn.clone())
                .or_default()
                .push(stream_source::Consumer {
                    function: Arc::clone(pool),
                    config: stream_source::StreamConfig {
                        batch_size: source.batch_size,
                        report_batch_item_failures: source.report_batch_item_failures,
                        filters: source.filters.clone(),
                        batching_window: source.batching_window,
                    },
                });
        }
        Ok(())
    }
}

/// The WebSocket APIs the template declares, each played by a gateway over the functions its
/// routes and authorizer invoke, and the router serving them all.
pub(crate) fn websocket_gateways(
    template: &Template,
    by_logical_id: &HashMap<String, Arc<FunctionPool>>,
) -> Result<(axum::Router, Vec<Arc<ws_gateway::WsGateway>>), BoxError> {
    let mut router = axum::Router::new();
    let mut websockets = Vec::new();
    for spec in &template.websocket_apis {
        let pool_of = |id: &str| {
            by_logical_id
                .get(id)
                .cloned()
                .ok_or_else(|| format!("{}: unknown function {id}", spec.logical_id))
        };
        let mut routes = HashMap::new();
        let (mut authorizer, mut identity_sources) = (None, vec![]);
        for route in &spec.routes {
            routes.insert(route.key.clone(), pool_of(&route.function)?);
            if let Some(id) = &route.authorizer {
                authorizer = Some(pool_of(id)?);
                identity_sources.clone_from(&route.identity_sources);
            }
        }
        let ws = Arc::new(ws_gateway::WsGateway::new(
            spec.clone(),
            routes,
            authorizer,
            identity_sources,
        ));
        router = router.merge(ws_gateway::router(Arc::clone(&ws)));
        websockets.push(ws);
    }
    Ok((router, websockets))
}
