//! Lambda entry point of the WebSocket route function.

use aws_adapters::ws_push::start_live;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_connections::Routes;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (store, frames) = start_live().await?;
    let routes = Arc::new(Routes {
        tasks: store.clone(),
        connections: store,
        pusher: Arc::new(frames),
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let routes = Arc::clone(&routes);
            async move { Ok::<_, Error>(routes.handle(event).await) }
        },
    ))
    .await
}
