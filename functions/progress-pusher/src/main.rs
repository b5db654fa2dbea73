//! Lambda entry point of the progress pusher.

use aws_adapters::startup::{required_env, start_with_store};
use aws_adapters::ws_push::ApiGatewayPusher;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use progress_pusher::Pusher;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (aws, store) = start_with_store().await?;
    let store = Arc::new(store);
    let pusher = Arc::new(Pusher {
        tasks: store.clone(),
        connections: store,
        pusher: Arc::new(ApiGatewayPusher::from_config(
            &aws,
            &required_env("WEBSOCKET_API_ENDPOINT")?,
        )),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let pusher = Arc::clone(&pusher);
        async move { Ok::<_, Error>(pusher.handle(event).await) }
    }))
    .await
}
