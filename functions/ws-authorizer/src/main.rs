//! Lambda entry point of the WebSocket `$connect` authorizer (work in progress, issue 11).
//! At cold start: the issuer's keys from `JWKS_URL`, the issuer and audiences the HTTP API's
//! authorizer uses (`JWT_ISSUER`, `JWT_AUDIENCE`, comma-separated), and development tokens
//! only if the local gateway gives them (`LOCAL_DEV_TOKENS`).

use aws_adapters::startup::{init_tracing, required_env};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_authorizer::{decide, DevTokens, Verifier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let issuer = required_env("JWT_ISSUER")?;
    let audiences: Vec<String> = required_env("JWT_AUDIENCE")?
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let jwks = reqwest::Client::new()
        .get(required_env("JWKS_URL")?)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let verifier = Arc::new(Verifier::new(jwks, &issuer, &audiences));
    let dev = Arc::new(DevTokens::parse(
        &std::env::var("LOCAL_DEV_TOKENS").unwrap_or_default(),
    ));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let (verifier, dev) = (Arc::clone(&verifier), Arc::clone(&dev));
            async move {
                let authorization = event
                    .payload
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                let arn = event.payload.method_arn.as_deref().unwrap_or_default();
                let (subject, answer) = decide(&verifier, &dev, authorization, arn);
                // The refusal's kind, never the token.
                match subject {
                    Ok(_) => tracing::info!("connection allowed"),
                    Err(why) => tracing::info!(refusal = ?why, "connection denied"),
                }
                Ok::<_, Error>(answer)
            }
        },
    ))
    .await
}
