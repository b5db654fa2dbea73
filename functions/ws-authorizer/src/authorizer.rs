//! The `$connect` handler. A connection with a `ticket` in its query string is the ticket's
//! caller if the ticket is unused and unexpired (it is used up by this check). Otherwise the
//! handler reads the `Authorization` header, checks it as the HTTP API would
//! ([`crate::decide`]), and asks the issuer for its keys again once when a token is signed by a
//! key it has not seen (the issuer may have rotated).

use crate::keys::IssuerKeys;
use crate::{decide, policy, DevTokens, Refusal, Verifier};
use aws_adapters::startup::{required_env, StartupError};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use jsonwebtoken::jwk::JwkSet;
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::ports::TicketStore;
use tasks_core::usecases::live_tickets as live_ticket;
use time::OffsetDateTime;

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

    /// `tickets` is awaited only for a connection that brings a ticket, so a header's check
    /// never waits for the table's client to be built.
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id))]
    pub async fn handle<S: TicketStore>(
        &self,
        tickets: impl std::future::Future<Output = Arc<S>>,
        event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    ) -> serde_json::Value {
        let arn = event.payload.method_arn.as_deref().unwrap_or_default();
        if let Some(ticket) = event.payload.query_string_parameters.first("ticket") {
            let tickets = tickets.await;
            let redeemed =
                live_ticket::redeem(tickets.as_ref(), ticket, OffsetDateTime::now_utc()).await;
            let subject = match redeemed {
                Ok(Some(owner)) => Ok(owner.as_str().to_owned()),
                Ok(None) => Err(Refusal::Ticket),
                Err(e) => {
                    tracing::error!(cause = %tasks_core::error::Chain(&e), "ticket check failed");
                    Err(Refusal::TicketUnchecked)
                }
            };
            log_verdict(&subject);
            return policy(&subject, arn);
        }
        let authorization = event
            .payload
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
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
        log_verdict(&verdict.0);
        verdict.1
    }
}

/// The refusal's kind, never the token, the ticket or the subject.
fn log_verdict(subject: &Result<String, Refusal>) {
    match subject {
        Ok(_) => tracing::info!("connection allowed"),
        Err(why) => tracing::info!(refusal = ?why, "connection denied"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasks_core::identity::Owner;
    use tasks_core::memory::MemoryStore;

    /// The store, as the function's set-up hands it over once built.
    fn ready(store: &Arc<MemoryStore>) -> impl std::future::Future<Output = Arc<MemoryStore>> {
        std::future::ready(Arc::clone(store))
    }

    fn connect(
        authorization: Option<&str>,
    ) -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
        connect_with(authorization, None)
    }

    fn connect_with(
        authorization: Option<&str>,
        ticket: Option<&str>,
    ) -> LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest> {
        let mut request = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
        if let Some(ticket) = ticket {
            let query = std::collections::HashMap::from([("ticket".to_owned(), ticket.to_owned())]);
            request.query_string_parameters = query.into();
        }
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
        let tickets = Arc::new(MemoryStore::default());
        let allowed = authorizer
            .handle(ready(&tickets), connect(Some("Bearer dev-token-alice")))
            .await;
        assert_eq!(allowed["principalId"], "alice");
        assert_eq!(allowed["context"]["sub"], "alice");
        assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
        for header in [
            None,
            Some("Bearer dev-token-mallory"),
            Some("Basic YWxpY2U6eA=="),
        ] {
            let denied = authorizer.handle(ready(&tickets), connect(header)).await;
            assert_eq!(
                denied["policyDocument"]["Statement"][0]["Effect"], "Deny",
                "{header:?}"
            );
            assert_eq!(denied["context"], serde_json::json!({}));
        }
    }

    #[tokio::test]
    async fn a_ticket_allows_its_caller_once_without_a_header() {
        // Given a ticket bob asked for
        let authorizer = authorizer();
        let tickets = Arc::new(MemoryStore::default());
        let bob = Owner::from_subject("bob").unwrap();
        let issued = live_ticket::issue(tickets.as_ref(), &bob, OffsetDateTime::now_utc())
            .await
            .unwrap();

        // When a browser connects with it, then again
        let first = authorizer
            .handle(ready(&tickets), connect_with(None, Some(&issued.ticket)))
            .await;
        let second = authorizer
            .handle(ready(&tickets), connect_with(None, Some(&issued.ticket)))
            .await;

        // Then the first connection is bob's and the second is refused
        assert_eq!(first["principalId"], "bob");
        assert_eq!(first["context"]["sub"], "bob");
        assert_eq!(second["policyDocument"]["Statement"][0]["Effect"], "Deny");
        // A made-up ticket is refused even beside a valid header: the ticket decides.
        let forged = authorizer
            .handle(
                ready(&tickets),
                connect_with(Some("Bearer dev-token-alice"), Some("forged")),
            )
            .await;
        assert_eq!(forged["policyDocument"]["Statement"][0]["Effect"], "Deny");
    }
}
