//! Lambda entry point of the ingest function: its settings are checked before the first
//! poll; its clients and secrets are built while that poll waits.

use aws_adapters::s3_files::S3Files;
use aws_adapters::startup::{required_env, QueueFunction, Warming};
use aws_lambda_events::event::sqs::SqsEvent;
use ingest::Ingest;
use lambda_runtime::{Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = QueueFunction::from_env()?;
    let settings = Settings::from_env()?;
    let bucket = required_env("UPLOADS_BUCKET")?;
    let ingest_queue = required_env("INGEST_QUEUE_URL")?;
    let handler = Warming::start(async move {
        let QueueFunction {
            store,
            lanes,
            queue,
            aws,
        } = start.connect().await?;
        Ok::<_, Error>(Ingest {
            settings,
            files: Arc::new(S3Files::from_config(&aws, bucket)),
            ingest: Arc::new(queue.ingest_queue(ingest_queue)),
            store,
            lanes,
            queue,
        })
    });
    handler
        .serve(|handler, event: LambdaEvent<SqsEvent>| async move { handler.handle(event).await })
        .await
}
