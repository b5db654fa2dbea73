//! Lambda entry point of the notifier function: its settings are checked before the first
//! poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::{required_env, StoreStart, Warming};
use aws_adapters::SqsDeliveryQueue;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notifier::Notifier;
use std::sync::Arc;

#[tokio::main]
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
    let serving = notifier.clone();
    let served = lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let notifier = serving.clone();
        async move { Ok::<_, Error>(notifier.get().await.handle(event).await) }
    }))
    .await;
    notifier.finish(served).await
}
