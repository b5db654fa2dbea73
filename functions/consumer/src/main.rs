//! Lambda entry point of the consumer function.

use aws_adapters::startup::QueueFunction;
use aws_lambda_events::event::sqs::SqsEvent;
use bos_client::{BosClient, BosConfig};
use consumer::Consumer;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::breaker::Breaker;
use tasks_core::config::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let QueueFunction {
        store,
        lanes,
        queue,
        ..
    } = QueueFunction::start().await?;
    let breaker = Arc::new(Breaker::default());
    let bos = BosClient::new(BosConfig::from_env()?)?.with_gate(breaker.clone());
    let consumer = Arc::new(Consumer {
        breakers: store.clone(),
        store,
        lanes,
        queue,
        backend: Arc::new(bos),
        breaker,
        settings: Settings::from_env()?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = Arc::clone(&consumer);
        async move { Ok::<_, Error>(consumer.handle(event).await) }
    }))
    .await
}
