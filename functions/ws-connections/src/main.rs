//! Lambda entry point of the WebSocket route function: its settings are checked before the
//! first poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::Warming;
use aws_adapters::ws_push::LiveStart;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent};
use std::sync::Arc;
use ws_connections::Routes;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = LiveStart::from_env()?;
    let routes = Warming::start(async move {
        let (store, frames) = start.connect().await?;
        Ok::<_, Error>(Routes {
            tasks: store.clone(),
            connections: store,
            pusher: Arc::new(frames),
        })
    });
    routes
        .serve(
            |routes, event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
                routes.handle(event).await
            },
        )
        .await
}
