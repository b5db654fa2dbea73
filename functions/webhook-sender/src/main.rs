//! Lambda entry point of the webhook sender function.

use aws_adapters::startup::{required_env, start_with_store};
use aws_adapters::SqsDeliveryQueue;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;
use webhook_sender::poster::HttpPoster;
use webhook_sender::Sender;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (aws, store) = start_with_store().await?;
    let store = Arc::new(store);
    let sender = Arc::new(Sender {
        endpoints: store.clone(),
        deliveries: store,
        poster: Arc::new(HttpPoster),
        queue: SqsDeliveryQueue::from_config(&aws, required_env("DELIVERY_QUEUE_URL")?),
        settings: Settings::from_env()?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let sender = Arc::clone(&sender);
        async move { Ok::<_, Error>(sender.handle(event).await) }
    }))
    .await
}
