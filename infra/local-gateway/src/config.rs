//! What a local stack is started with: the template, the emulators' endpoints, the function
//! binaries, development tokens and secrets, and the knobs the tests turn.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub template: PathBuf,
    /// Prefix of every table and queue name this stack creates.
    pub prefix: String,
    pub dynamodb_endpoint: String,
    pub sqs_endpoint: String,
    /// Folder holding the built function binaries (`target/debug` or `target/release`).
    pub functions_dir: PathBuf,
    pub listen: SocketAddr,
    /// Template parameter values (e.g. `BosUrl`) replacing the defaults.
    pub parameters: BTreeMap<String, String>,
    /// Variables added to every function's environment, after the template's.
    pub extra_env: BTreeMap<String, String>,
    /// Development bearer token → subject (the JWT `sub` claim).
    pub tokens: HashMap<String, String>,
    /// Processes per function (Lambda's concurrency) for functions whose template sets no
    /// limit; an SQS source's `ScalingConfig.MaximumConcurrency` decides for its function.
    pub concurrency: usize,
    /// Folder for the functions' logs, one file per function; `None` prints them.
    pub log_dir: Option<PathBuf>,
    /// How soon a failed SQS message comes back (AWS: the visibility timeout).
    pub retry_delay: Duration,
    /// Documents served as they are: path → (content type, bytes).
    pub static_files: HashMap<String, (String, Vec<u8>)>,
    /// Secrets Manager secrets the template references, by name (the local stack plays Secrets
    /// Manager too).
    pub secrets: BTreeMap<String, String>,
    /// Functions (logical ids) whose queues are not polled, as if their event source mapping
    /// were disabled: messages stay in the queue (e.g. to test a DLQ redrive).
    pub paused_event_sources: Vec<String>,
}

impl StackConfig {
    /// Defaults for this repository: template at the root, emulators on their usual ports.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            template: root.join("template.yaml"),
            prefix: "local".into(),
            dynamodb_endpoint: "http://127.0.0.1:8000".into(),
            sqs_endpoint: "http://127.0.0.1:5000".into(),
            functions_dir: root.join("target/debug"),
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            parameters: BTreeMap::new(),
            // Webhook receivers on this machine (`http://127.0.0.1:…`) are allowed locally only;
            // the template never sets this.
            // The retry schedule runs a hundred times faster (5 s → 50 ms, 10 h → 6 min).
            extra_env: BTreeMap::from([
                ("WEBHOOK_ALLOW_LOOPBACK".to_owned(), "true".to_owned()),
                ("WEBHOOK_SCHEDULE_SCALE".to_owned(), "0.01".to_owned()),
            ]),
            tokens: HashMap::from([
                ("dev-token-alice".to_owned(), "alice".to_owned()),
                ("dev-token-bob".to_owned(), "bob".to_owned()),
            ]),
            concurrency: 2,
            log_dir: None,
            retry_delay: Duration::from_secs(1),
            static_files: HashMap::new(),
            paused_event_sources: Vec::new(),
            // Development values, named as such: the functions refuse to start without their
            // secrets, and only the local stack supplies these.
            secrets: BTreeMap::from([
                (
                    "background-tasks/page-token-secret".to_owned(),
                    "local-development-only-page-tokens".to_owned(),
                ),
                (
                    "background-tasks/log-pseudonym-key".to_owned(),
                    "local-development-only-pseudonyms".to_owned(),
                ),
            ]),
        }
    }
}
