//! Lambda entry point of the consumer function.

use aws_adapters::startup::{aws_config, init_pseudonym_key, init_tracing, required_env};
use aws_adapters::{DynamoTaskStore, SqsWorkQueue};
use aws_lambda_events::event::sqs::SqsEvent;
use bos_client::{BosClient, BosConfig};
use consumer::Consumer;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    init_pseudonym_key()?;
    let aws = aws_config().await;
    let table = required_env("TABLE_NAME")?;
    let store = DynamoTaskStore::from_config(&aws, table);
    let consumer = Arc::new(Consumer {
        lanes: Arc::new(store.lanes()),
        store: Arc::new(store),
        queue: Arc::new(SqsWorkQueue::from_config(
            &aws,
            required_env("WORK_QUEUE_URL")?,
        )),
        backend: Arc::new(BosClient::new(BosConfig::from_env()?)?),
        settings: Settings::from_env()?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = Arc::clone(&consumer);
        async move { Ok::<_, Error>(consumer.handle(event).await) }
    }))
    .await
}
