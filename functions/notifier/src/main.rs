//! Lambda entry point of the notifier function.

use aws_adapters::startup::{required_env, start_with_store};
use aws_adapters::SqsDeliveryQueue;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notifier::Notifier;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (aws, store) = start_with_store().await?;
    let store = Arc::new(store);
    let deliveries = SqsDeliveryQueue::from_config(&aws, required_env("DELIVERY_QUEUE_URL")?);
    let files = deliveries.ingest_queue(required_env("INGEST_QUEUE_URL")?);
    let notifier = Arc::new(Notifier {
        tasks: store.clone(),
        endpoints: store.clone(),
        deliveries: store,
        queue: Arc::new(deliveries),
        files: Arc::new(files),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let notifier = Arc::clone(&notifier);
        async move { Ok::<_, Error>(notifier.handle(event).await) }
    }))
    .await
}
