//! Cold start: time from exec to the process's first Runtime API poll, and to its answer to a
//! first event, against a minimal fake Runtime API, for each function and for a hello-world
//! `lambda_runtime` binary built in the same run; and the release binaries' sizes. Functions
//! read their secrets from Secrets Manager (moto) as deployed; the first answer with the
//! secrets in the environment shows what that read adds.

use crate::report::{median, Report};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the fake Runtime API saw of one start: its first poll, and when the function answered
/// the event handed out (if one was).
#[derive(Debug)]
enum Seen {
    Polled(Instant),
    Answered(Instant),
}

/// A Runtime API that reports each `/next` poll and never answers it, except that the first
/// poll gets `event` when one is given; then it reports the function's answer to that event.
async fn fake_runtime_api(
    event: Option<&'static str>,
) -> Result<(String, mpsc::UnboundedReceiver<Seen>), BoxError> {
    #[derive(Clone)]
    struct Api {
        seen: mpsc::UnboundedSender<Seen>,
        event: Option<&'static str>,
        handed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }
    async fn next(State(api): State<Api>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let _ = api.seen.send(Seen::Polled(Instant::now()));
        let first = !api.handed.swap(true, std::sync::atomic::Ordering::SeqCst);
        match api.event {
            Some(event) if first => {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis()
                    + 30_000;
                (
                    [
                        (
                            "lambda-runtime-aws-request-id",
                            "bench-request-1".to_owned(),
                        ),
                        ("lambda-runtime-deadline-ms", deadline.to_string()),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:000000000000:function:bench".to_owned(),
                        ),
                        ("content-type", "application/json".to_owned()),
                    ],
                    event,
                )
                    .into_response()
            }
            _ => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "".into_response()
            }
        }
    }
    async fn answered(State(api): State<Api>) -> &'static str {
        let _ = api.seen.send(Seen::Answered(Instant::now()));
        ""
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let api = Api {
        seen: tx,
        event,
        handed: Default::default(),
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            axum::routing::post(answered),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            axum::routing::post(answered),
        )
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, rx))
}

/// The event a function answers first in the first-answer rows: one that needs no AWS call of
/// its own, so the row is the start, the set-up the function waits for, and the answer.
fn first_event(function: &str) -> &'static str {
    match function {
        // A request the api refuses without reading anything: no authorizer subject.
        "api" => {
            r#"{"version":"2.0","routeKey":"GET /tasks","rawPath":"/tasks","rawQueryString":"","headers":{},"requestContext":{"accountId":"000000000000","apiId":"bench","domainName":"bench","domainPrefix":"bench","http":{"method":"GET","path":"/tasks","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"bench"},"requestId":"bench-request-1","routeKey":"GET /tasks","stage":"$default","time":"03/Dec/2026:00:00:00 +0000","timeEpoch":0},"isBase64Encoded":false}"#
        }
        // A $connect with no token: refused before any key is fetched.
        "ws-authorizer" => {
            r#"{"type":"REQUEST","methodArn":"arn:aws:execute-api:us-east-1:000000000000:bench/live/$connect","headers":{},"requestContext":{"routeKey":"$connect"}}"#
        }
        // A message with no connection id: refused before the table is read.
        "ws-connections" => {
            r#"{"requestContext":{"routeKey":"$default","apiId":"bench","stage":"live"},"isBase64Encoded":false}"#
        }
        // Queue and stream functions: an empty batch.
        _ => r#"{"Records":[]}"#,
    }
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

/// What a start is timed to: the first poll, or the answer to the first event.
#[derive(Clone, Copy, PartialEq)]
enum Until {
    FirstPoll,
    FirstAnswer,
}

/// The median of `runs` cold starts of `binary`, in ms.
async fn cold_start_ms(
    binary: &PathBuf,
    runs: usize,
    secrets: Secrets<'_>,
    until: Until,
) -> Result<f64, BoxError> {
    let launch = Launch::of(binary)?;
    let mut times = vec![];
    for _ in 0..runs {
        times.push(start_once(&launch, secrets, until).await?);
    }
    Ok(median(times))
}

/// The medians of `runs` first polls of `binary` and of `hello`, started in turn, so both see
/// the machine at the same moments: on 2 cores a burst of other work (DynamoDB Local's JVM
/// after a large section) would otherwise land on one and not the other.
async fn first_poll_beside_hello_ms(
    binary: &PathBuf,
    hello: &PathBuf,
    runs: usize,
    secrets: Secrets<'_>,
) -> Result<(f64, f64), BoxError> {
    let (launch, hello) = (Launch::of(binary)?, Launch::of(hello)?);
    let (mut times, mut hellos) = (vec![], vec![]);
    for _ in 0..runs {
        hellos.push(start_once(&hello, Secrets::Environment, Until::FirstPoll).await?);
        times.push(start_once(&launch, secrets, Until::FirstPoll).await?);
    }
    Ok((median(times), median(hellos)))
}

/// A function binary and its settings as template.yaml ships them, read once for its runs.
struct Launch<'a> {
    binary: &'a PathBuf,
    name: &'a str,
    shipped: std::collections::BTreeMap<String, String>,
}

impl<'a> Launch<'a> {
    fn of(binary: &'a PathBuf) -> Result<Self, BoxError> {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let shipped = crate::shipped::settings_of(&crate::shipped::template()?, name);
        Ok(Self {
            binary,
            name,
            shipped,
        })
    }
}

/// One cold start, from spawning the binary to `until`, in ms.
async fn start_once(
    launch: &Launch<'_>,
    secrets: Secrets<'_>,
    until: Until,
) -> Result<f64, BoxError> {
    let Launch {
        binary,
        name,
        shipped,
    } = launch;
    let event = (until == Until::FirstAnswer).then(|| first_event(name));
    let (addr, mut seen) = fake_runtime_api(event).await?;
    let started = Instant::now();
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        // The function's own settings as template.yaml ships them (e.g. the authorizer's
        // issuer, audiences and key-set URL, at their parameters' defaults: its keys are
        // fetched on first use, so no cold start reaches that URL). What follows does not
        // run the shipped values: it replaces what names a deployed stack's resources
        // (`!Ref`s with no value before deployment: the table, BOS, the queues, the uploads
        // bucket, the WebSocket API, the secrets, the CA bundle) with local stand-ins. No
        // start reaches any of them before its first poll; only the secrets are read, from
        // moto, before the first answer.
        .envs(shipped.iter())
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
        .env("INGEST_QUEUE_URL", "http://127.0.0.1:9/ingest")
        .env("UPLOADS_BUCKET", "bench-uploads")
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
    let reached = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .map_err(|_| format!("{} never reached the Runtime API", binary.display()))?
            .ok_or("the fake Runtime API stopped")?;
        match (until, next) {
            (Until::FirstPoll, Seen::Polled(at)) | (Until::FirstAnswer, Seen::Answered(at)) => {
                break at
            }
            _ => continue,
        }
    };
    child.kill().await?;
    Ok((reached - started).as_secs_f64() * 1e3)
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
    let hello_binary = dir.join("hello-lambda");
    let hello = cold_start_ms(&hello_binary, 21, Secrets::Environment, Until::FirstPoll).await?;
    let hello_answer =
        cold_start_ms(&hello_binary, 21, Secrets::Environment, Until::FirstAnswer).await?;
    let size = |name: &str| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.len() as f64 / 1024.0 / 1024.0)
            .unwrap_or(0.0)
    };
    report.info(
        "cold start, hello-world lambda_runtime (exec → first poll; → first answer; median of 21)",
        format!(
            "{hello:.1} ms; {hello_answer:.1} ms; binary {:.1} MB",
            size("hello-lambda")
        ),
    );
    report.note("Cold start is measured from spawning the process to its first GET of the Runtime API's /next, on this machine (x86_64, no Lambda sandbox), with each function's settings as template.yaml ships them (parameters at their defaults, e.g. the WebSocket authorizer's JWT issuer and audiences), SSL_CERT_FILE as the template sets it (this machine's bundle), its secrets in Secrets Manager (moto on loopback) as deployed, and, instead of the template's values where those name a deployed stack's resources (`!Ref`s: the table, BOS, the queues, the uploads bucket and the WebSocket API), local stand-ins that no start reaches. Before that poll a function checks its settings and where its secrets are; the AWS SDK configuration and clients, the secrets' reads and the BOS client's TLS set-up run while the poll waits (`aws_adapters::startup::Warming`). The first-answer figure is what a caller waits for: from spawning the process until it answers its first event, one that needs no AWS call of its own (the api: a request without an authorizer subject; the authorizer: a $connect without a token; the WebSocket routes: a message without a connection id; the others: an empty batch), so it holds the whole set-up, the secrets' reads included. In AWS add the round trip to Secrets Manager in the region (typically tens of milliseconds, once per cold start) to it; a request's own reads and writes come on top, as they do warm. The last figure is the same first answer with the secrets given in the environment instead.");
    for f in [
        "api",
        "consumer",
        "dead-letter",
        "ingest",
        "notifier",
        "webhook-sender",
        "progress-pusher",
        "ws-authorizer",
        "ws-connections",
    ] {
        let binary = dir.join(f);
        let manager = Secrets::Manager(&moto);
        let (ms, hello) = first_poll_beside_hello_ms(&binary, &hello_binary, 21, manager).await?;
        let answer = cold_start_ms(&binary, 21, manager, Until::FirstAnswer).await?;
        let env_answer =
            cold_start_ms(&binary, 21, Secrets::Environment, Until::FirstAnswer).await?;
        report.check(
            format!("cold start, {f} (exec → first poll; → first answer; median of 21)"),
            format!(
                "{ms:.1} ms ({:.1}× hello-world's {hello:.1} ms, started in turn with it); first answer {answer:.1} ms ({:.1}× hello-world's; {env_answer:.1} ms with the secrets in the environment); binary {:.1} MB",
                ms / hello,
                answer / hello_answer,
                size(f)
            ),
            "first poll ≤ 2× hello-world",
            ms <= 2.0 * hello,
        );
    }
    Ok(())
}
