//! Lambda entry point of the notifier function: its settings are checked before the first
//! poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::{required_env, StoreStart, Warming};
use aws_adapters::SqsDeliveryQueue;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent};
use notifier::Notifier;
use std::sync::Arc;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = StoreStart::from_env()?;
    let delivery_queue = required_env("DELIVERY_QUEUE_URL")?;
    let ingest_queue = required_env("INGEST_QUEUE_URL")?;
    let notifier = Warming::start(async move {
        let (aws, store) = start.connect().await?;
        let store = Arc::new(store);
        let deliveries = SqsDeliveryQueue::from_config(&aws, delivery_queue);
        let files = deliveries.ingest_queue(ingest_queue);
        Ok::<_, Error>(Notifier {
            tasks: store.clone(),
            endpoints: store.clone(),
            deliveries: store,
            queue: Arc::new(deliveries),
            files: Arc::new(files),
        })
    });
    notifier
        .serve(|notifier, event: LambdaEvent<Event>| async move { notifier.handle(event).await })
        .await
}
