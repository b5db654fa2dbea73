//! Secrets fail closed: the real function binaries, started as Lambda would start them but
//! without their secrets, refuse to start, and say which secret is missing. A secret in the
//! environment is checked before the first poll; one in Secrets Manager is read while that
//! poll waits, and a failed read ends the process all the same.

use integration_tests::functions_dir;
use std::process::Command;

/// Runs a function binary with everything it needs but `missing`; returns what it printed.
fn start_without(binary: &str, missing: &str) -> String {
    let mut command = Command::new(functions_dir().join(binary));
    command
        .env_clear()
        .env("TABLE_NAME", "t")
        .env("WORK_QUEUE_URL", "http://127.0.0.1:9/000000000000/q.fifo")
        .env("DELIVERY_QUEUE_URL", "http://127.0.0.1:9/000000000000/d")
        .env("BOS_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        // Nothing listens there: a function that got past its checks would fail on its first
        // poll instead, with another message.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("PAGE_TOKEN_SECRET", "a-page-token-secret-long-enough")
        .env("LOG_PSEUDONYM_KEY", "a-pseudonym-key-long-enough")
        .env("WEBSOCKET_API_ENDPOINT", "http://127.0.0.1:9/live")
        .env("JWT_ISSUER", "https://issuer.example")
        .env("JWT_AUDIENCE", "background-tasks-api")
        .env("JWKS_URL", "http://127.0.0.1:9/jwks.json")
        .env_remove(missing);
    let out = command.output().expect("the function binary runs");
    assert!(!out.status.success(), "{binary} started without {missing}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn functions_refuse_to_start_without_their_secrets() {
    for binary in [
        "api",
        "consumer",
        "ingest",
        "dead-letter",
        "notifier",
        "webhook-sender",
        "ws-connections",
        "progress-pusher",
    ] {
        let said = start_without(binary, "LOG_PSEUDONYM_KEY");
        assert!(said.contains("LOG_PSEUDONYM_KEY"), "{binary}: {said}");
    }
    // The WebSocket authorizer logs no caller, so it needs no pseudonym key; without the
    // issuer's settings it accepts nobody, and so does not start.
    for missing in ["JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL"] {
        let said = start_without("ws-authorizer", missing);
        assert!(said.contains(missing), "{missing}: {said}");
    }
    let said = start_without("api", "PAGE_TOKEN_SECRET");
    assert!(said.contains("PAGE_TOKEN_SECRET"), "{said}");
}

#[test]
fn a_toy_secret_is_refused_too() {
    let mut command = Command::new(functions_dir().join("consumer"));
    let out = command
        .env_clear()
        .env("TABLE_NAME", "t")
        .env("AWS_REGION", "us-east-1")
        .env("LOG_PSEUDONYM_KEY", "short")
        .output()
        .expect("the function binary runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("shorter than 16 bytes"), "{said}");
}

/// Runs `binary` reading its pseudonym key from Secrets Manager (moto) under `secret_id`.
async fn start_reading_secret(binary: &str, secret_id: &str) -> (bool, String) {
    let moto = std::env::var("SQS_ENDPOINT").expect("scripts/test sets SQS_ENDPOINT");
    let out = tokio::process::Command::new(functions_dir().join(binary))
        .env_clear()
        .env("TABLE_NAME", "t")
        .env("WORK_QUEUE_URL", "http://127.0.0.1:9/000000000000/q.fifo")
        .env("BOS_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto)
        // As Lambda sets it; nothing listens at the Runtime API, so the first poll fails while
        // the secret is read, and the function reports whichever failure came from set-up.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("LOG_PSEUDONYM_KEY_SECRET_ID", secret_id)
        .output()
        .await
        .expect("the function binary runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn a_secret_is_read_from_secrets_manager_at_cold_start_and_fails_closed() {
    let moto = std::env::var("SQS_ENDPOINT").expect("scripts/test sets SQS_ENDPOINT");
    let secrets = local_gateway::secrets_client(&moto).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (good, toy) = (format!("startup/{run}/good"), format!("startup/{run}/toy"));
    let stored = std::collections::BTreeMap::from([
        (good.clone(), "a-pseudonym-key-long-enough".to_owned()),
        (toy.clone(), "short".to_owned()),
    ]);
    local_gateway::resources::store_secrets(&secrets, &stored)
        .await
        .unwrap();

    // A readable secret: the consumer gets past its secrets and fails only at its first poll
    // of the Runtime API (nothing listens there)
    let (_, said) = start_reading_secret("consumer", &good).await;
    assert!(!said.contains("LOG_PSEUDONYM_KEY"), "{said}");

    // A secret that does not exist, or is a toy: refused at start, naming it
    let (ok, said) = start_reading_secret("consumer", &format!("startup/{run}/absent")).await;
    assert!(!ok);
    assert!(
        said.contains("could not be read from Secrets Manager"),
        "{said}"
    );
    let (ok, said) = start_reading_secret("consumer", &toy).await;
    assert!(!ok);
    assert!(said.contains("shorter than 16 bytes"), "{said}");
}
