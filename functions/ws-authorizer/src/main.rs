//! Lambda entry point of the WebSocket `$connect` authorizer: its settings from the
//! environment ([`Authorizer::from_env`] and `TABLE_NAME`, where live tickets are kept) are
//! checked before the first poll; the table's client is built while that poll waits, and only
//! a connection with a ticket waits for it.

use aws_adapters::startup::{aws_config, init_tracing, required_env, Warming};
use aws_adapters::DynamoTaskStore;
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_authorizer::authorizer::Authorizer;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let authorizer = Arc::new(Authorizer::from_env()?);
    let table = required_env("TABLE_NAME")?;
    let tickets = Warming::start(async move {
        Ok::<_, Error>(DynamoTaskStore::from_config(&aws_config().await, table))
    });
    let serving = tickets.clone();
    let served = lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let (authorizer, tickets) = (Arc::clone(&authorizer), serving.clone());
            async move { Ok::<_, Error>(authorizer.handle(tickets.get(), event).await) }
        },
    ))
    .await;
    tickets.finish(served).await
}
