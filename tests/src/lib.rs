//! Test harness for the end-to-end tests: [`spawn_app`] starts, per test, a BOS simulator and
//! a local stack (the real function binaries behind the local gateway) on free loopback
//! ports, with table and queue names under a fresh prefix in the shared DynamoDB Local and
//! moto servers that `scripts/test` started. Tests then talk HTTP to it like any client.

pub mod faults;

use bos_simulator::{Knobs, Simulator, Stats, EXISTING_IBAN};
use local_gateway::{LocalStack, StackConfig};
use reqwest::RequestBuilder;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub const ALICE: &str = "dev-token-alice";
pub const BOB: &str = "dev-token-bob";
/// More callers, for the scheduling tests: `dev-token-{name}` is caller `{name}`.
pub const MORE_CALLERS: [&str; 3] = ["dev-token-carol", "dev-token-dave", "dev-token-erin"];
pub const IMPORT: &str = "beneficiaries-import";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub bos: Simulator,
    pub bos_url: String,
    pub stack: LocalStack,
    pub log_dir: PathBuf,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    _bos_task: tokio::task::JoinHandle<()>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The folder with the built function binaries: `FUNCTIONS_DIR`, or the profile folder this
/// test binary was built into (`target/debug/deps/<test>` → `target/debug`).
pub fn functions_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FUNCTIONS_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target profile folder")
        .to_path_buf()
}

#[derive(Default)]
pub struct AppOptions {
    pub knobs: Knobs,
    /// Added to every function's environment.
    pub extra_env: Vec<(&'static str, String)>,
    /// Template parameters replacing their defaults (e.g. `MaxReceiveCount`).
    pub parameters: Vec<(&'static str, String)>,
    /// Another DynamoDB endpoint than the shared one.
    pub dynamodb_endpoint: Option<String>,
    /// How soon a failed message comes back (default 1 s).
    pub retry_delay: Option<Duration>,
    /// Functions whose queues are not polled.
    pub paused_event_sources: Vec<&'static str>,
}

impl AppOptions {
    /// BOS can never process `iban` (every call for it fails transiently), chunks are of 5
    /// items and BOS is tried twice per delivery: the chunk holding it soon ends in the
    /// dead-letter queue.
    pub fn dead_lettering(iban: String) -> Self {
        Self {
            knobs: Knobs {
                failing_ibans: vec![iban],
                ..Knobs::default()
            },
            extra_env: vec![("CHUNK_SIZE", "5".into()), ("BOS_MAX_ATTEMPTS", "2".into())],
            ..Self::default()
        }
    }
}

/// A stack whose consumer process aborts right after its `calls`-th BOS call, before recording
/// it (the crash failpoint), once: the function pool starts another process and SQS redelivers
/// the chunk. Returns the app and the marker file the crash leaves behind.
pub async fn spawn_app_crashing_after(calls: usize) -> (TestApp, PathBuf) {
    let marker = std::env::temp_dir().join(format!("crash-{}", uuid::Uuid::new_v4()));
    let app = spawn_app_with(AppOptions {
        extra_env: vec![
            ("FAILPOINT_CRASH_AFTER_BOS_CALLS", calls.to_string()),
            ("FAILPOINT_MARKER", marker.display().to_string()),
        ],
        ..Default::default()
    })
    .await;
    (app, marker)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let ddb_endpoint = options
        .dynamodb_endpoint
        .clone()
        .unwrap_or_else(|| env_or("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"));
    let sqs_endpoint = env_or("SQS_ENDPOINT", "http://127.0.0.1:5000");

    let bos = Simulator::new(options.knobs, &[EXISTING_IBAN]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind BOS");
    let bos_url = format!("http://{}", listener.local_addr().expect("BOS addr"));
    let bos_task = tokio::spawn({
        let bos = bos.clone();
        async move {
            let _ = bos.serve(listener).await;
        }
    });

    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let log_dir = std::env::temp_dir()
        .join("beneficiary-tasks-tests")
        .join(&prefix);
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let mut config = StackConfig::new(project_root());
    config.prefix = prefix;
    config.dynamodb_endpoint = ddb_endpoint.clone();
    config.sqs_endpoint = sqs_endpoint.clone();
    config.functions_dir = functions_dir();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.parameters.insert("BosUrl".into(), bos_url.clone());
    config.log_dir = Some(log_dir.clone());
    for token in MORE_CALLERS {
        let name = token.trim_start_matches("dev-token-");
        config.tokens.insert(token.to_owned(), name.to_owned());
    }
    for (k, v) in options.extra_env {
        config.extra_env.insert(k.to_owned(), v);
    }
    for (k, v) in options.parameters {
        config.parameters.insert(k.to_owned(), v);
    }
    if let Some(d) = options.retry_delay {
        config.retry_delay = d;
    }
    config.paused_event_sources = options
        .paused_event_sources
        .iter()
        .map(|s| s.to_string())
        .collect();
    let stack = LocalStack::start(config).await.unwrap_or_else(|e| {
        panic!(
            "cannot start the local stack ({e}). DynamoDB Local must listen on {ddb_endpoint} and moto on \
             {sqs_endpoint}, and the function binaries must be built: run scripts/test, which does both."
        )
    });
    let (ddb, sqs) = local_gateway::emulator_clients(&ddb_endpoint, &sqs_endpoint).await;
    TestApp {
        base: stack.url(),
        http: reqwest::Client::new(),
        bos,
        bos_url,
        stack,
        log_dir,
        ddb,
        sqs,
        _bos_task: bos_task,
    }
}

/// A status and a parsed JSON body (Null when the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let res = request.send().await.expect("request to the local gateway");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A request to this stack's gateway as `token`'s caller; [`Self::send`] sends it. The
    /// helpers below are this with a method and, for POSTs, a JSON body.
    pub fn request(&self, method: reqwest::Method, token: &str, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    pub async fn get(&self, token: &str, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::GET, token, path))
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::DELETE, token, path))
            .await
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> Answer {
        self.send(json_post(
            self.request(reqwest::Method::POST, token, path),
            body,
        ))
        .await
    }

    /// A `text/csv` POST, with an `Idempotency-Key` when given.
    pub async fn post_csv(&self, token: &str, path: &str, key: Option<&str>, csv: &str) -> Answer {
        let mut request = self
            .request(reqwest::Method::POST, token, path)
            .header("content-type", "text/csv")
            .body(csv.to_owned());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    /// A JSON POST with an `Idempotency-Key`.
    pub async fn post_idempotent(
        &self,
        token: &str,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Answer {
        let request = json_post(self.request(reqwest::Method::POST, token, path), body);
        self.send(request.header("idempotency-key", key)).await
    }

    /// A queue of this test's stack, by logical id, e.g. `WorkQueue`.
    pub fn queue_url(&self, logical_id: &str) -> String {
        self.stack.provisioned.queues[logical_id].url.clone()
    }

    /// Messages in a queue, visible or in flight.
    pub async fn queue_depth(&self, logical_id: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.queue_url(logical_id))
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let attrs = out.attributes().cloned().unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// Waits (bounded) until a queue is empty.
    pub async fn wait_queue_empty(&self, logical_id: &str) {
        let empty = || async { (self.queue_depth(logical_id).await == 0).then_some(()) };
        eventually(empty)
            .await
            .unwrap_or_else(|| panic!("{logical_id} never emptied"))
    }

    /// Waits (bounded) until a queue holds at least one message.
    pub async fn wait_queue_not_empty(&self, logical_id: &str) {
        let filled = || async { (self.queue_depth(logical_id).await > 0).then_some(()) };
        eventually(filled)
            .await
            .unwrap_or_else(|| panic!("{logical_id} never received a message"))
    }

    /// The name of this test's table.
    pub fn table(&self) -> String {
        self.stack.provisioned.tables["TasksTable"].clone()
    }

    pub async fn import(&self, token: &str, items: &Value) -> Answer {
        self.post_json(token, &format!("/tasks/{IMPORT}"), items)
            .await
    }

    /// Polls the task until it is final. Bounded so a stuck task fails the test instead of
    /// hanging it; the bound is generous and says nothing about speed.
    pub async fn wait_final(&self, token: &str, task_id: &str) -> Value {
        self.wait_task(token, IMPORT, task_id).await
    }

    /// [`Self::wait_final`] for a task of any type.
    pub async fn wait_task(&self, token: &str, task_type: &str, task_id: &str) -> Value {
        let path = format!("/tasks/{task_type}/{task_id}");
        let last = std::sync::Mutex::new(Value::Null);
        let is_final = || async {
            let a = self.get(token, &path).await;
            assert_eq!(a.status, 200, "{}", a.body);
            let status = a.body["status"].as_str().unwrap_or_default().to_owned();
            *last.lock().expect("not poisoned") = a.body.clone();
            let open = ["awaiting_upload", "validating", "queued", "running"];
            (!open.contains(&status.as_str())).then_some(a.body)
        };
        match eventually(is_final).await {
            Some(task) => task,
            None => panic!(
                "task {task_id} never became final; last state: {}",
                last.lock().expect("not poisoned")
            ),
        }
    }

    pub async fn bos_stats(&self) -> Stats {
        self.bos.stats()
    }

    /// The table's items by kind: the sort key up to its first `#` (`TASK`, `ITEM`, `CHUNK`,
    /// `START`, `STATE`, `SEG`, `IDEMP`).
    pub async fn table_item_kinds(&self) -> std::collections::BTreeMap<String, usize> {
        let table = self
            .stack
            .provisioned
            .tables
            .get("TasksTable")
            .expect("table");
        let mut kinds = std::collections::BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .ddb
                .scan()
                .table_name(table)
                .projection_expression("sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let kind = sk.split('#').next().unwrap_or_default().to_owned();
                *kinds.entry(kind).or_insert(0) += 1;
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return kinds;
            }
        }
    }

    /// What one function (by binary name: `api`, `consumer`, `dead-letter`) wrote so far.
    pub fn function_log(&self, binary: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{binary}.log"))).unwrap_or_default()
    }

    /// Everything the functions wrote to their logs so far.
    pub fn function_logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.log_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        all
    }
}

pub use tasks_core::test_ibans::german as german_iban;

/// How long [`eventually`] polls before it gives up: generous, since it bounds a stuck test
/// and says nothing about speed.
pub const POLL_BOUND: Duration = Duration::from_secs(180);

/// Polls `probe` every 200 ms until it gives a value; `None` after [`POLL_BOUND`], for the
/// caller to fail with what it knows. The one wait loop of the end-to-end tests.
pub async fn eventually<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let interval = Duration::from_millis(200);
    let rounds = POLL_BOUND.as_millis() / interval.as_millis();
    for _ in 0..rounds {
        if let Some(value) = probe().await {
            return Some(value);
        }
        tokio::time::sleep(interval).await;
    }
    None
}

/// `request` as a JSON POST carrying `body`.
fn json_post(request: RequestBuilder, body: &Value) -> RequestBuilder {
    request
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// `n` valid, distinct beneficiaries (IBANs from account 1 on).
pub fn beneficiaries(n: usize) -> Value {
    beneficiaries_from(1, n)
}

/// `n` valid, distinct beneficiaries with accounts `first..first + n`, so several imports of
/// one test do not collide at BOS (which rejects an IBAN it has seen).
pub fn beneficiaries_from(first: u64, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"name": format!("Payee {i}"), "country": "DE", "currency": "EUR",
                       "iban": german_iban(first + i as u64), "external_id": format!("ext-{i}")})
            })
            .collect(),
    )
}
