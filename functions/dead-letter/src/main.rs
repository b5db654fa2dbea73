//! Lambda entry point of the dead-letter function.

use aws_adapters::startup::QueueFunction;
use aws_lambda_events::event::sqs::SqsEvent;
use dead_letter::DeadLetter;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let QueueFunction {
        store,
        lanes,
        queue,
        ..
    } = QueueFunction::start().await?;
    let handler = Arc::new(DeadLetter {
        settings: Settings::from_env()?,
        store,
        lanes,
        queue,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Error>(handler.handle(event).await) }
    }))
    .await
}
