//! Lambda entry point of the consumer function: its settings are checked before the first
//! poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::{QueueFunction, Warming};
use aws_lambda_events::event::sqs::SqsEvent;
use bos_client::{BosClient, BosConfig};
use consumer::Consumer;
use lambda_runtime::{Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::breaker::Breaker;
use tasks_core::config::Settings;

// mimalloc: allocation and copies were the largest share of the consumer's CPU per item
// (measured in docs/benchmarks.md, issue 25).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: an invocation's work is waiting on BOS, DynamoDB and SQS, and a second worker
// thread only adds wake-ups between threads (measured in docs/benchmarks.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = QueueFunction::from_env()?;
    let settings = Settings::from_env()?;
    let bos = BosConfig::from_env()?;
    let consumer = Warming::start(async move {
        let QueueFunction {
            store,
            lanes,
            queue,
            ..
        } = start.connect().await?;
        let breaker = Arc::new(Breaker::default());
        let bos = BosClient::new(bos)?.with_gate(breaker.clone());
        Ok::<_, Error>(Consumer {
            breakers: store.clone(),
            store,
            lanes,
            queue,
            backend: Arc::new(bos),
            breaker,
            turn: Default::default(),
            settings,
        })
    });
    consumer
        .serve(|consumer, event: LambdaEvent<SqsEvent>| async move { consumer.handle(event).await })
        .await
}
