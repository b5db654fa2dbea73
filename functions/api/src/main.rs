//! Lambda entry point of the api function: its settings are checked before the first poll;
//! its clients and secrets are built while that poll waits, then it serves.

use api::{App, Ports};
use aws_adapters::s3_files::S3Files;
use aws_adapters::startup::{
    aws_config, init_pseudonym_key, init_tracing, required_env, secret_source, Warming,
};
use aws_adapters::{DynamoTaskStore, SqsWorkQueue};
use bos_client::{BosClient, BosConfig};
use lambda_http::{service_fn, Error, Request};
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::paging::PageTokens;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let pseudonym_key = secret_source("LOG_PSEUDONYM_KEY")?;
    let page_token_key = secret_source("PAGE_TOKEN_SECRET")?;
    let table = required_env("TABLE_NAME")?;
    let work_queue = required_env("WORK_QUEUE_URL")?;
    let delivery_queue = required_env("DELIVERY_QUEUE_URL")?;
    let ingest_queue = required_env("INGEST_QUEUE_URL")?;
    let bucket = required_env("UPLOADS_BUCKET")?;
    let bos = BosConfig::from_env()?;
    let console = api::console::ConsoleSettings::from_env(settings.max_body_bytes);
    let app = Warming::start(async move {
        let aws = aws_config().await;
        // Both secrets at once: each is one Secrets Manager call per cold start.
        let (pseudonyms, page_token_key) = tokio::join!(
            init_pseudonym_key(&aws, pseudonym_key),
            page_token_key.read(&aws)
        );
        pseudonyms?;
        let page_token_key = page_token_key?;
        let store = DynamoTaskStore::from_config(&aws, table);
        let lanes = Arc::new(store.lanes());
        let work_queue = SqsWorkQueue::from_config(&aws, work_queue);
        let delivery_queue = work_queue.delivery_queue(delivery_queue);
        let ingest_queue = work_queue.ingest_queue(ingest_queue);
        let ports = Ports {
            lanes,
            queue: Arc::new(work_queue),
            backend: Arc::new(BosClient::new(bos)?),
            delivery_queue: Arc::new(delivery_queue),
            files: Arc::new(S3Files::from_config(&aws, bucket)),
            ingest: Arc::new(ingest_queue),
            console,
        };
        Ok::<_, Error>(App::new(
            Arc::new(store),
            ports,
            settings,
            PageTokens::new(&page_token_key),
        ))
    });
    let serving = app.clone();
    let served = lambda_http::run(service_fn(move |req: Request| {
        let app = serving.clone();
        async move { Ok::<_, Error>(app.get().await.handle(req).await) }
    }))
    .await;
    app.finish(served).await
}
