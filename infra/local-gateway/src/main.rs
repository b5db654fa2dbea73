//! `local-gateway`: the local stack for `scripts/dev`. Configured by environment:
//! `LOCAL_GATEWAY_ADDR` (127.0.0.1:3000), `DYNAMODB_ENDPOINT` (http://127.0.0.1:8000),
//! `SQS_ENDPOINT` (http://127.0.0.1:5000), `BOS_URL` (http://127.0.0.1:3100),
//! `FUNCTIONS_DIR` (target/debug), `STACK_PREFIX` (local), `FUNCTION_CONCURRENCY` (2),
//! `LOCAL_GATEWAY_TOKENS` (`dev-token-alice=alice,dev-token-bob=bob`), `LOCAL_GATEWAY_LOG_DIR`
//! (unset: the functions' logs go to the gateway's own output; set: one file per function
//! binary, `api.log`, `consumer.log`, …, for `jq`).

use local_gateway::{LocalStack, StackConfig};
use std::path::PathBuf;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), local_gateway::BoxError> {
    tracing_subscriber::fmt().with_target(false).init();
    let root = var("PROJECT_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut config = StackConfig::new(&root);
    if let Some(v) = var("LOCAL_GATEWAY_ADDR") {
        config.listen = v.parse()?;
    }
    if let Some(v) = var("DYNAMODB_ENDPOINT") {
        config.dynamodb_endpoint = v;
    }
    if let Some(v) = var("SQS_ENDPOINT") {
        config.sqs_endpoint = v;
    }
    if let Some(v) = var("FUNCTIONS_DIR") {
        config.functions_dir = PathBuf::from(v);
    }
    if let Some(v) = var("STACK_PREFIX") {
        config.prefix = v;
    }
    if let Some(v) = var("FUNCTION_CONCURRENCY") {
        config.concurrency = v.parse()?;
    }
    if let Some(v) = var("LOCAL_GATEWAY_LOG_DIR") {
        std::fs::create_dir_all(&v)?;
        config.log_dir = Some(PathBuf::from(v));
    }
    if let Some(v) = var("LOCAL_GATEWAY_TOKENS") {
        config.tokens = v
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(t, s)| (t.trim().to_owned(), s.trim().to_owned()))
            .collect();
    }
    config.parameters.insert(
        "BosUrl".into(),
        var("BOS_URL").unwrap_or_else(|| "http://127.0.0.1:3100".into()),
    );
    let openapi = root.join("docs/openapi.yaml");
    if let Ok(bytes) = std::fs::read(&openapi) {
        config
            .static_files
            .insert("/openapi.yaml".into(), ("application/yaml".into(), bytes));
    }

    let stack = LocalStack::start(config).await?;
    tracing::info!(url = %stack.url(), websocket = ?stack.websocket_url(), table = ?stack.provisioned.tables, "local gateway ready");
    tokio::signal::ctrl_c().await?;
    stack.stop();
    Ok(())
}
