//! Lambda entry point of the dead-letter function: its settings are checked before the first
//! poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::{QueueFunction, Warming};
use aws_lambda_events::event::sqs::SqsEvent;
use dead_letter::DeadLetter;
use lambda_runtime::{Error, LambdaEvent};
use tasks_core::config::Settings;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = QueueFunction::from_env()?;
    let settings = Settings::from_env()?;
    let handler = Warming::start(async move {
        let QueueFunction {
            store,
            lanes,
            queue,
            ..
        } = start.connect().await?;
        Ok::<_, Error>(DeadLetter {
            settings,
            store,
            lanes,
            queue,
        })
    });
    handler
        .serve(|handler, event: LambdaEvent<SqsEvent>| async move { handler.handle(event).await })
        .await
}
