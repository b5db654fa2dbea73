//! Lambda entry point of the WebSocket `$connect` authorizer: its settings from the
//! environment ([`Authorizer::from_env`]), then serve.

use aws_adapters::startup::init_tracing;
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_authorizer::authorizer::Authorizer;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let authorizer = Arc::new(Authorizer::from_env()?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let authorizer = Arc::clone(&authorizer);
            async move { Ok::<_, Error>(authorizer.handle(event).await) }
        },
    ))
    .await
}
