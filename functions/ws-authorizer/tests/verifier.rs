//! The authorizer's JWT checks against a test-only key pair (tests/fixtures: never used
//! anywhere else).

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};
use ws_authorizer::{Refusal, Verifier};

const ISSUER: &str = "https://issuer.example";

fn verifier() -> Verifier {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(include_str!("fixtures/test-only-jwks.json")).unwrap();
    Verifier::new(jwks, ISSUER, &["background-tasks-api".to_owned()])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(claims: serde_json::Value, kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/test-only-rsa.pem")).unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, &claims, &key).unwrap()
}

fn good() -> serde_json::Value {
    json!({"sub": "alice", "iss": ISSUER, "aud": "background-tasks-api", "exp": now() + 300})
}

fn check(claims: serde_json::Value, kid: &str) -> Result<String, Refusal> {
    verifier().subject(Some(&format!("Bearer {}", token(claims, kid))))
}

#[test]
fn a_valid_token_gives_its_subject() {
    assert_eq!(check(good(), "test-1"), Ok("alice".to_owned()));
}

#[test]
fn every_check_refuses_on_its_own() {
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good();
        c[k] = v;
        c
    };
    assert_eq!(
        check(with("iss", json!("https://other.example")), "test-1"),
        Err(Refusal::Invalid)
    );
    assert_eq!(
        check(with("aud", json!("someone-else")), "test-1"),
        Err(Refusal::Invalid)
    );
    assert_eq!(
        check(with("exp", json!(now() - 600)), "test-1"),
        Err(Refusal::Invalid)
    );
    assert_eq!(check(good(), "another-key"), Err(Refusal::UnknownKey));
    let mut no_sub = good();
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(check(no_sub, "test-1"), Err(Refusal::Invalid));
}

#[test]
fn a_tampered_or_missing_token_is_refused() {
    let t = token(good(), "test-1");
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = token(
        json!({"sub": "mallory", "iss": ISSUER, "aud": "background-tasks-api", "exp": now() + 300}),
        "test-1",
    );
    let forged_claims = forged.split('.').nth(1).unwrap().to_owned();
    parts[1] = &forged_claims;
    let spliced = parts.join(".");
    // The claims of one token with the signature of another: the signature no longer matches.
    let v = verifier();
    assert_eq!(
        v.subject(Some(&format!("Bearer {spliced}"))),
        Err(Refusal::Invalid)
    );
    assert_eq!(v.subject(None), Err(Refusal::Missing));
    assert_eq!(v.subject(Some("Bearer ")), Err(Refusal::Missing));
    assert_eq!(v.subject(Some("Bearer not-a-jwt")), Err(Refusal::Malformed));
    assert_eq!(v.subject(Some("dev-token-alice")), Err(Refusal::Missing));
}

#[test]
fn the_answer_allows_the_subject_or_denies_and_dev_tokens_work_only_when_given() {
    let arn = "arn:aws:execute-api:us-east-1:000000000000:api/stage/$connect";
    let none = ws_authorizer::DevTokens::default();
    let dev = ws_authorizer::DevTokens::parse("dev-token-alice=alice, dev-token-bob=bob");
    let header = format!("Bearer {}", token(good(), "test-1"));

    let (subject, answer) = ws_authorizer::decide(&verifier(), &none, Some(&header), arn);
    assert_eq!(subject, Ok("alice".to_owned()));
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(answer["policyDocument"]["Statement"][0]["Resource"], arn);
    assert_eq!(answer["context"]["sub"], "alice");

    let (subject, answer) =
        ws_authorizer::decide(&verifier(), &none, Some("Bearer dev-token-bob"), arn);
    assert!(subject.is_err(), "no dev tokens unless given");
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(answer["context"], json!({}));

    let (subject, _) = ws_authorizer::decide(&verifier(), &dev, Some("Bearer dev-token-bob"), arn);
    assert_eq!(subject, Ok("bob".to_owned()));
}
