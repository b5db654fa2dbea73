//! The local gateway/runner: everything AWS does around the three functions, on loopback.
//!
//! [`LocalStack::start`] reads `template.yaml`, creates its table and queues (under a name
//! prefix) in DynamoDB Local and moto, starts each function's real binary behind its own
//! Lambda Runtime API with the environment the template gives it, serves the api function
//! over HTTP like API Gateway, and polls the queues like Lambda's event source mappings.
//! The `local-gateway` binary does this for `scripts/dev`; the integration tests do it once
//! per test, each with its own prefix.

pub mod config;
pub mod emulators;
pub mod function;
pub mod http_gateway;
pub mod poller;
pub mod resources;
pub mod runtime_api;
pub mod stream_source;
pub mod template;
mod wiring;
pub mod ws_gateway;

pub use config::StackConfig;
pub use emulators::{emulator_clients, secrets_client, streams_client};

use function::FunctionPool;
use resources::{provision, Provisioned};
use std::net::SocketAddr;
use std::sync::Arc;
use template::Template;
use tokio::task::JoinHandle;
use wiring::Wiring;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        let secrets = &config.secrets;
        let moto = &config.sqs_endpoint;
        let mut provisioned = provision(
            &template,
            &config.prefix,
            &ddb,
            &sqs,
            moto,
            &parameters,
            secrets,
        )
        .await?;
        for api in &template.websocket_apis {
            provisioned
                .websocket_apis
                .insert(api.logical_id.clone(), format!("http://{addr}"));
        }
        let secrets = secrets_client(&config.sqs_endpoint).await;
        resources::store_secrets(&secrets, &provisioned.secrets).await?;

        let mut wiring = Wiring::new(&config, &template, &provisioned, sqs);
        for f in &template.functions {
            wiring.start_function(f).await?;
        }
        let Wiring {
            pools,
            mut tasks,
            api,
            routes,
            by_logical_id,
            stream_consumers,
            ..
        } = wiring;
        let mut readers = Vec::new();
        for (stream_arn, consumers) in stream_consumers {
            let endpoint = config.dynamodb_endpoint.clone();
            readers.push(stream_source::spawn(endpoint, stream_arn, consumers)?);
        }
        let api = api.ok_or("the template has no function with HttpApi events")?;
        let jwks = axum::routing::get(|| async { axum::Json(serde_json::json!({"keys": []})) });
        let (router, websockets) = wiring::websocket_gateways(&template, &by_logical_id)?;
        let gateway = Arc::new(http_gateway::Gateway {
            api,
            routes,
            tokens: config.tokens.clone(),
            static_files: config.static_files.clone(),
        });
        let router = router
            .route(LOCAL_JWKS_PATH, jwks)
            .merge(http_gateway::router(gateway));
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
