//! Lambda entry point of the progress pusher.

use aws_adapters::ws_push::start_live;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use progress_pusher::Pusher;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (store, frames) = start_live().await?;
    let pusher = Arc::new(Pusher {
        tasks: store.clone(),
        connections: store,
        pusher: Arc::new(frames),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let pusher = Arc::clone(&pusher);
        async move { Ok::<_, Error>(pusher.handle(event).await) }
    }))
    .await
}
