//! Cold start: time from exec to the process's first Runtime API poll, against a minimal fake
//! Runtime API, for each function and for a hello-world `lambda_runtime` binary built in the
//! same run; and the release binaries' sizes. Functions read their secrets from Secrets
//! Manager (moto) as deployed; the same start with the secrets in the environment shows what
//! that read adds.

use crate::report::{median, Report};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A Runtime API that only reports when `/next` is first called, and never answers.
async fn fake_runtime_api() -> Result<(String, mpsc::UnboundedReceiver<Instant>), BoxError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(
                |State(tx): State<mpsc::UnboundedSender<Instant>>| async move {
                    let _ = tx.send(Instant::now());
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    ""
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, rx))
}

/// Where a started function finds its secrets.
#[derive(Clone, Copy)]
enum Secrets<'a> {
    /// In its environment (the values themselves).
    Environment,
    /// In Secrets Manager at this endpoint (moto), named by `…_SECRET_ID`, as deployed.
    Manager(&'a str),
}

const PAGE_TOKEN_SECRET_NAME: &str = "bench/page-token-secret";
const LOG_PSEUDONYM_SECRET_NAME: &str = "bench/log-pseudonym-key";

async fn cold_start_ms(
    binary: &PathBuf,
    runs: usize,
    secrets: Secrets<'_>,
) -> Result<f64, BoxError> {
    let (addr, mut polls) = fake_runtime_api().await?;
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let shipped = crate::shipped::settings_of(&crate::shipped::template()?, name);
    let mut times = vec![];
    for _ in 0..runs {
        let started = Instant::now();
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            // The function's own settings as template.yaml ships them (e.g. the authorizer's
            // issuer, audiences and key-set URL, at their parameters' defaults: its keys are
            // fetched on first use, so no cold start reaches that URL). What follows replaces
            // what names a deployed stack's resources (BOS, queues, secrets, the CA bundle).
            .envs(&shipped)
            .env("AWS_LAMBDA_RUNTIME_API", &addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("TABLE_NAME", "bench")
            .env("WORK_QUEUE_URL", "http://127.0.0.1:9/queue")
            .env("DELIVERY_QUEUE_URL", "http://127.0.0.1:9/deliveries")
            .env("BOS_URL", "http://127.0.0.1:9")
            .env("WEBSOCKET_API_ENDPOINT", "http://127.0.0.1:9/live")
            // As template.yaml sets it (with this machine's bundle path).
            .env(
                "SSL_CERT_FILE",
                local_gateway::local_ca_bundle().unwrap_or_default(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        // The secrets every function refuses to start without.
        match secrets {
            // Without the template's secret names, or those would be read instead.
            Secrets::Environment => command
                .env_remove("PAGE_TOKEN_SECRET_SECRET_ID")
                .env_remove("LOG_PSEUDONYM_KEY_SECRET_ID")
                .env("PAGE_TOKEN_SECRET", "bench-page-token-secret")
                .env("LOG_PSEUDONYM_KEY", "bench-log-pseudonym-key"),
            Secrets::Manager(endpoint) => command
                .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
                .env("PAGE_TOKEN_SECRET_SECRET_ID", PAGE_TOKEN_SECRET_NAME)
                .env("LOG_PSEUDONYM_KEY_SECRET_ID", LOG_PSEUDONYM_SECRET_NAME),
        };
        let mut child = command.spawn()?;
        let polled = tokio::time::timeout(Duration::from_secs(10), polls.recv())
            .await
            .map_err(|_| format!("{} never polled the Runtime API", binary.display()))?
            .ok_or("no poll")?;
        times.push((polled - started).as_secs_f64() * 1e3);
        child.kill().await?;
    }
    Ok(median(times))
}

pub async fn cold_starts_and_sizes(report: &mut Report) -> Result<(), BoxError> {
    let dir =
        PathBuf::from(std::env::var("FUNCTIONS_DIR").unwrap_or_else(|_| "target/release".into()));
    let moto = crate::workload::env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    local_gateway::resources::store_secrets(
        &local_gateway::secrets_client(&moto).await,
        &std::collections::BTreeMap::from([
            (
                PAGE_TOKEN_SECRET_NAME.to_owned(),
                "bench-page-token-secret".to_owned(),
            ),
            (
                LOG_PSEUDONYM_SECRET_NAME.to_owned(),
                "bench-log-pseudonym-key".to_owned(),
            ),
        ]),
    )
    .await?;
    let hello = cold_start_ms(&dir.join("hello-lambda"), 21, Secrets::Environment).await?;
    let size = |name: &str| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.len() as f64 / 1024.0 / 1024.0)
            .unwrap_or(0.0)
    };
    report.info(
        "cold start, hello-world lambda_runtime (exec → first poll, median of 21)",
        format!("{hello:.1} ms; binary {:.1} MB", size("hello-lambda")),
    );
    report.note("Cold start is measured from spawning the process to its first GET of the Runtime API's /next, on this machine (x86_64, no Lambda sandbox), with each function's settings as template.yaml ships them (parameters at their defaults, e.g. the WebSocket authorizer's JWT issuer and audiences), SSL_CERT_FILE as the template sets it (this machine's bundle), and local stand-ins for what a deployed stack gives (the URLs of BOS, the queues and the WebSocket API): it covers exec, the tokio runtime, the AWS SDK configuration and client construction (which loads the CA bundle), reading the secrets the functions refuse to start without from Secrets Manager (moto on loopback: in AWS add the round trip to Secrets Manager in the region, typically tens of milliseconds, paid once per cold start), and the BOS HTTP client's TLS set-up. The hello-world baseline does none of the last four. The secrets' row compares the same start with the secrets given in the environment, as before they moved to Secrets Manager.");
    for f in ["api", "consumer", "dead-letter"] {
        let ms = cold_start_ms(&dir.join(f), 21, Secrets::Manager(&moto)).await?;
        let env_ms = cold_start_ms(&dir.join(f), 21, Secrets::Environment).await?;
        report.check(
            format!("cold start, {f} (exec → first poll, median of 21)"),
            format!(
                "{ms:.1} ms ({:.1}× hello-world); binary {:.1} MB",
                ms / hello,
                size(f)
            ),
            "≤ 2× hello-world",
            ms <= 2.0 * hello,
        );
        report.info(
            format!("  of which reading its secrets from Secrets Manager ({f}, against the environment)"),
            format!("{:+.1} ms ({env_ms:.1} ms with the secrets in the environment)", ms - env_ms),
        );
    }
    // Live progress: the authorizer runs on every $connect, the route function on every
    // message. The authorizer reads no secret and fetches the issuer's keys on first use.
    for f in ["ws-authorizer", "ws-connections"] {
        let ms = cold_start_ms(&dir.join(f), 21, Secrets::Manager(&moto)).await?;
        report.info(
            format!("cold start, {f} (exec → first poll, median of 21)"),
            format!(
                "{ms:.1} ms ({:.1}× hello-world); binary {:.1} MB",
                ms / hello,
                size(f)
            ),
        );
    }
    Ok(())
}
