//! Lambda entry point of the WebSocket route function.

use aws_adapters::startup::{required_env, start_with_store};
use aws_adapters::ws_push::ApiGatewayPusher;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_connections::Routes;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (aws, store) = start_with_store().await?;
    let store = Arc::new(store);
    let routes = Arc::new(Routes {
        tasks: store.clone(),
        connections: store,
        pusher: Arc::new(ApiGatewayPusher::from_config(
            &aws,
            &required_env("WEBSOCKET_API_ENDPOINT")?,
        )),
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let routes = Arc::clone(&routes);
            async move { Ok::<_, Error>(routes.handle(event).await) }
        },
    ))
    .await
}
