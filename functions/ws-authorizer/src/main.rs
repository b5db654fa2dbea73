//! Lambda entry point of the WebSocket `$connect` authorizer. From the environment: the issuer
//! and audiences the HTTP API's authorizer uses (`JWT_ISSUER`, `JWT_AUDIENCE`, comma-separated),
//! where the issuer publishes its keys (`JWKS_URL`, fetched on first use), and development
//! tokens only if the local gateway gives them (`LOCAL_DEV_TOKENS`).

use aws_adapters::startup::{init_tracing, required_env};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use jsonwebtoken::jwk::JwkSet;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use ws_authorizer::keys::IssuerKeys;
use ws_authorizer::{decide, DevTokens, Refusal, Verifier};

struct Authorizer {
    issuer: String,
    audiences: Vec<String>,
    keys: IssuerKeys,
    dev: DevTokens,
}

impl Authorizer {
    fn verifier(&self, keys: Option<Arc<JwkSet>>) -> Verifier {
        let keys = keys.unwrap_or_else(|| Arc::new(JwkSet { keys: vec![] }));
        Verifier::new(keys, &self.issuer, &self.audiences)
    }

    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id))]
    async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    ) -> serde_json::Value {
        let authorization = event
            .payload
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let arn = event.payload.method_arn.as_deref().unwrap_or_default();
        let mut verdict = decide(
            &self.verifier(self.keys.current().await),
            &self.dev,
            authorization,
            arn,
        );
        if verdict.0 == Err(Refusal::UnknownKey) {
            // The issuer may have rotated its keys since they were fetched.
            verdict = decide(
                &self.verifier(self.keys.refresh().await),
                &self.dev,
                authorization,
                arn,
            );
        }
        // The refusal's kind, never the token or the subject.
        match &verdict.0 {
            Ok(_) => tracing::info!("connection allowed"),
            Err(why) => tracing::info!(refusal = ?why, "connection denied"),
        }
        verdict.1
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let authorizer = Arc::new(Authorizer {
        issuer: required_env("JWT_ISSUER")?,
        audiences: required_env("JWT_AUDIENCE")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect(),
        keys: IssuerKeys::new(required_env("JWKS_URL")?),
        dev: DevTokens::parse(&std::env::var("LOCAL_DEV_TOKENS").unwrap_or_default()),
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let authorizer = Arc::clone(&authorizer);
            async move { Ok::<_, Error>(authorizer.handle(event).await) }
        },
    ))
    .await
}
