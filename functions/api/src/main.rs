//! Lambda entry point of the api function: build clients and settings once, then serve.

use api::{App, Ports};
use aws_adapters::s3_files::S3Files;
use aws_adapters::startup::{
    aws_config, init_pseudonym_key, init_tracing, required_env, required_secret,
};
use aws_adapters::{DynamoTaskStore, SqsWorkQueue};
use bos_client::{BosClient, BosConfig};
use lambda_http::{service_fn, Error, Request};
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::paging::PageTokens;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let aws = aws_config().await;
    // Both secrets at once: each is one Secrets Manager call at cold start.
    let (pseudonyms, page_token_key) = tokio::join!(
        init_pseudonym_key(&aws),
        required_secret(&aws, "PAGE_TOKEN_SECRET")
    );
    pseudonyms?;
    let page_token_key = page_token_key?;
    let table = required_env("TABLE_NAME")?;
    let store = DynamoTaskStore::from_config(&aws, table);
    let lanes = Arc::new(store.lanes());
    let work_queue = SqsWorkQueue::from_config(&aws, required_env("WORK_QUEUE_URL")?);
    let delivery_queue = work_queue.delivery_queue(required_env("DELIVERY_QUEUE_URL")?);
    let ingest_queue = work_queue.ingest_queue(required_env("INGEST_QUEUE_URL")?);
    let files = S3Files::from_config(&aws, required_env("UPLOADS_BUCKET")?);
    let ports = Ports {
        lanes,
        queue: Arc::new(work_queue),
        backend: Arc::new(BosClient::new(BosConfig::from_env()?)?),
        delivery_queue: Arc::new(delivery_queue),
        files: Arc::new(files),
        ingest: Arc::new(ingest_queue),
    };
    let app = Arc::new(App::new(
        Arc::new(store),
        ports,
        settings,
        PageTokens::new(&page_token_key),
    ));
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Error>(app.handle(req).await) }
    }))
    .await
}
