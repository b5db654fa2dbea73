//! The `$connect` handler: reads the caller's `Authorization` header, checks it as the HTTP
//! API would ([`crate::decide`]), and asks the issuer for its keys again once when a token is
//! signed by a key it has not seen (the issuer may have rotated).

use crate::keys::IssuerKeys;
use crate::{decide, DevTokens, Refusal, Verifier};
use aws_adapters::startup::{required_env, StartupError};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use jsonwebtoken::jwk::JwkSet;
use lambda_runtime::LambdaEvent;
use std::sync::Arc;

pub struct Authorizer {
    issuer: String,
    audiences: Vec<String>,
    keys: IssuerKeys,
    dev: DevTokens,
}

impl Authorizer {
    pub fn new(issuer: String, audiences: Vec<String>, keys: IssuerKeys, dev: DevTokens) -> Self {
        Self {
            issuer,
            audiences,
            keys,
            dev,
        }
    }

    /// From the environment: the issuer and audiences the HTTP API's authorizer uses
    /// (`JWT_ISSUER`, `JWT_AUDIENCE`, comma-separated), where the issuer publishes its keys
    /// (`JWKS_URL`, fetched on first use), and development tokens only if the local gateway
    /// gives them (`LOCAL_DEV_TOKENS`).
    pub fn from_env() -> Result<Self, StartupError> {
        let audiences = required_env("JWT_AUDIENCE")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        Ok(Self::new(
            required_env("JWT_ISSUER")?,
            audiences,
            IssuerKeys::new(required_env("JWKS_URL")?),
            DevTokens::parse(&std::env::var("LOCAL_DEV_TOKENS").unwrap_or_default()),
        ))
    }

    fn verifier(&self, keys: Option<Arc<JwkSet>>) -> Verifier {
        let keys = keys.unwrap_or_else(|| Arc::new(JwkSet { keys: vec![] }));
        Verifier::new(keys, &self.issuer, &self.audiences)
    }

    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id))]
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    ) -> serde_json::Value {
        let authorization = event
            .payload
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let arn = event.payload.method_arn.as_deref().unwrap_or_default();
        let check = |keys| decide(&self.verifier(keys), &self.dev, authorization, arn);
        // Without a token the answer is no whatever the keys: they are not fetched for it.
        let keys = match authorization {
            Some(_) => self.keys.current().await,
            None => None,
        };
        let mut verdict = check(keys);
        if verdict.0 == Err(Refusal::UnknownKey) {
            // The issuer may have rotated its keys since they were fetched.
            verdict = check(self.keys.refresh().await);
        }
        // The refusal's kind, never the token or the subject.
        match &verdict.0 {
            Ok(_) => tracing::info!("connection allowed"),
            Err(why) => tracing::info!(refusal = ?why, "connection denied"),
        }
        verdict.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(
        authorization: Option<&str>,
    ) -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
        let mut request = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
        request.method_arn = Some("arn:aws:execute-api:us-east-1:1:api/live/$connect".into());
        if let Some(value) = authorization {
            request
                .headers
                .insert("authorization", value.parse().unwrap());
        }
        LambdaEvent::new(request, lambda_runtime::Context::default())
    }

    fn authorizer() -> Authorizer {
        // No issuer listens on port 9: its keys cannot be had, so only a development token
        // can pass, and only because this authorizer was given one.
        Authorizer::new(
            "https://issuer.example".into(),
            vec!["api".into()],
            IssuerKeys::new("http://127.0.0.1:9/jwks.json".into()),
            DevTokens::parse("dev-token-alice=alice"),
        )
    }

    #[tokio::test]
    async fn allows_a_known_token_as_its_subject_and_denies_the_rest() {
        let authorizer = authorizer();
        let allowed = authorizer
            .handle(connect(Some("Bearer dev-token-alice")))
            .await;
        assert_eq!(allowed["principalId"], "alice");
        assert_eq!(allowed["context"]["sub"], "alice");
        assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
        for header in [
            None,
            Some("Bearer dev-token-mallory"),
            Some("Basic YWxpY2U6eA=="),
        ] {
            let denied = authorizer.handle(connect(header)).await;
            assert_eq!(
                denied["policyDocument"]["Statement"][0]["Effect"], "Deny",
                "{header:?}"
            );
            assert_eq!(denied["context"], serde_json::json!({}));
        }
    }
}
