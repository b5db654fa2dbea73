//! Lambda entry point of the webhook sender function: its settings are checked before the
//! first poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::{required_env, StoreStart, Warming};
use aws_adapters::SqsDeliveryQueue;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;
use webhook_sender::poster::HttpPoster;
use webhook_sender::Sender;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = StoreStart::from_env()?;
    let delivery_queue = required_env("DELIVERY_QUEUE_URL")?;
    let settings = Settings::from_env()?;
    let sender = Warming::start(async move {
        let (aws, store) = start.connect().await?;
        let store = Arc::new(store);
        Ok::<_, Error>(Sender {
            endpoints: store.clone(),
            deliveries: store,
            poster: Arc::new(HttpPoster),
            queue: SqsDeliveryQueue::from_config(&aws, delivery_queue),
            settings,
        })
    });
    sender
        .serve(|sender, event: LambdaEvent<SqsEvent>| async move { sender.handle(event).await })
        .await
}
