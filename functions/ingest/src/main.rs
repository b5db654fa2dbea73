//! Lambda entry point of the ingest function.

use aws_adapters::s3_files::S3Files;
use aws_adapters::startup::{required_env, QueueFunction};
use aws_lambda_events::event::sqs::SqsEvent;
use ingest::Ingest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let QueueFunction {
        store,
        lanes,
        queue,
        aws,
    } = QueueFunction::start().await?;
    let handler = Arc::new(Ingest {
        settings: Settings::from_env()?,
        files: Arc::new(S3Files::from_config(&aws, required_env("UPLOADS_BUCKET")?)),
        ingest: Arc::new(queue.ingest_queue(required_env("INGEST_QUEUE_URL")?)),
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
