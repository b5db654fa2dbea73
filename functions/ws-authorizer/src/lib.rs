//! The WebSocket API's `$connect` authorizer. WebSocket APIs take
//! no JWT authorizer, so this Lambda REQUEST authorizer makes the HTTP API's checks itself:
//! the token's signature against the issuer's published keys (JWKS), its issuer, one of the
//! accepted audiences, and its expiry. The subject it returns becomes the connection's owner;
//! nothing the client sends besides the token names it.
//!
//! Browsers cannot set headers on a WebSocket, so a page connects with a live ticket instead
//! (`?ticket=…`, from `POST /live-tickets`): single-use, 30 seconds, and it names the caller
//! whose token asked for it (`tasks_core::live_ticket`).

pub mod authorizer;
pub mod keys;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde::Deserialize;

/// Why a token was refused. Never shown to the client (a refused `$connect` is a plain 401);
/// for the function's log only.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Bearer` token in the request.
    Missing,
    /// Not a JWT, or a header without a key id.
    Malformed,
    /// Signed by a key the issuer does not publish.
    UnknownKey,
    /// Bad signature, wrong issuer or audience, expired, not yet valid, no subject.
    Invalid,
    /// A ticket that is unknown, used already or expired.
    Ticket,
    /// The ticket could not be checked (the table did not answer): refused, never waved on.
    TicketUnchecked,
}

/// The HTTP API's JWT rules, with the issuer's current keys.
pub struct Verifier {
    keys: std::sync::Arc<JwkSet>,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Verifier {
    /// `issuer` and `audiences` as the template gives the HTTP API's authorizer.
    pub fn new(
        keys: impl Into<std::sync::Arc<JwkSet>>,
        issuer: &str,
        audiences: &[String],
    ) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            keys: keys.into(),
            validation,
        }
    }

    /// The token's subject, if the token passes every check.
    pub fn subject(&self, authorization: Option<&str>) -> Result<String, Refusal> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing)?;
        let header = decode_header(token).map_err(|_| Refusal::Malformed)?;
        let kid = header.kid.ok_or(Refusal::Malformed)?;
        let jwk = self.keys.find(&kid).ok_or(Refusal::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::UnknownKey)?;
        let data = decode::<Claims>(token, &key, &self.validation).map_err(|_| Refusal::Invalid)?;
        if data.claims.sub.is_empty() {
            return Err(Refusal::Invalid);
        }
        Ok(data.claims.sub)
    }
}

/// Development bearer tokens (`dev-token-alice=alice,…`), accepted only when the local gateway
/// gives them (`LOCAL_DEV_TOKENS`); the template never does, so a deployed authorizer knows
/// none.
#[derive(Debug, Default)]
pub struct DevTokens(std::collections::HashMap<String, String>);

impl DevTokens {
    pub fn parse(spec: &str) -> Self {
        Self(
            spec.split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(t, s)| (t.trim().to_owned(), s.trim().to_owned()))
                .filter(|(t, s)| !t.is_empty() && !s.is_empty())
                .collect(),
        )
    }

    fn subject(&self, authorization: Option<&str>) -> Option<String> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.0.get(token).cloned()
    }
}

/// The authorizer's answer for API Gateway: allow the connection as `subject`, or deny it.
pub fn decide(
    verifier: &Verifier,
    dev: &DevTokens,
    authorization: Option<&str>,
    method_arn: &str,
) -> (Result<String, Refusal>, serde_json::Value) {
    let subject = dev
        .subject(authorization)
        .map_or_else(|| verifier.subject(authorization), Ok);
    let answer = policy(&subject, method_arn);
    (subject, answer)
}

/// API Gateway's policy for a verdict: allow the connection as the subject, or deny it.
pub fn policy(subject: &Result<String, Refusal>, method_arn: &str) -> serde_json::Value {
    let (effect, principal) = match subject {
        Ok(s) => ("Allow", s.as_str()),
        Err(_) => ("Deny", "anonymous"),
    };
    serde_json::json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
        // What the route functions see as requestContext.authorizer: the owner, nothing else.
        "context": if subject.is_ok() { serde_json::json!({"sub": principal}) } else { serde_json::json!({}) },
    })
}
