//! Lambda entry point of the WebSocket route function: its settings are checked before the
//! first poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::Warming;
use aws_adapters::ws_push::LiveStart;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_connections::Routes;

#[tokio::main]
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
    let serving = routes.clone();
    let served = lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let routes = serving.clone();
            async move { Ok::<_, Error>(routes.get().await.handle(event).await) }
        },
    ))
    .await;
    routes.finish(served).await
}
