//! HTTP client for the upstream back-office service (BOS), the adapter behind the core's
//! [`BeneficiaryBackend`] port.
//!
//! - Connect and per-request time-outs, so a hung BOS costs a bounded wait.
//! - Answers are classified: 2xx success; 409 and 4xx business rejections are permanent;
//!   429, 5xx, time-outs and connection failures are transient.
//! - Transient failures are retried with capped exponential backoff and full jitter
//!   (`backon`), honouring `Retry-After`, and never past the caller's deadline.
//! - Every attempt carries the same `Idempotency-Key`, so a retry can never create twice.
//! - Answers are distrusted: redirects are not followed (a 3xx is an upstream error, never a
//!   GET of somewhere else), at most [`MAX_ANSWER_BYTES`] of an answer are read, success bodies
//!   are decoded strictly and checked against what was sent, and a validation succeeds only on
//!   an explicit `{"valid": true}`. Whatever fails those checks is `BadResponse`
//!   (`upstream_error`), never a success.
//! - A [`CallGate`] (the consumer's breaker, `tasks_core::breaker`) hears how every attempt
//!   went and is asked before every retry, so an outage stops the retries of calls already
//!   under way, and a `Retry-After` reaches every consumer.
//! - Every attempt carries the current trace ([`tasks_core::trace`]) as W3C `traceparent` and
//!   `X-Amzn-Trace-Id`, each attempt a span of its own.

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use rand::Rng;
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasks_core::beneficiary::{Beneficiary, CreatedBeneficiary};
use tasks_core::breaker::{AlwaysOpen, CallGate, Health};
use tasks_core::ports::BeneficiaryBackend;
use tasks_core::trace;
use tasks_core::upstream::{BackendError, Rejection, RejectionKind, UpstreamCause};

/// The most of one BOS answer that is read: a beneficiary or an error is well under 1 KiB, so
/// anything near this is not an answer we can trust, and reading it would cost the consumer's
/// memory (the function has 128 MB).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What went wrong beneath an upstream failure, kept as the [`BackendError`]'s source so the
/// log's cause chain names it; never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum BosFault {
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    #[error("answer cut short")]
    CutShort(#[source] reqwest::Error),
    #[error("redirect ({0}) not followed")]
    Redirect(u16),
    #[error("status {0} with an unexpected body")]
    UnexpectedErrorBody(u16),
    #[error("answer over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("success answer is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("success answer is not a beneficiary")]
    NotABeneficiary(#[source] serde_json::Error),
    #[error("success answer echoes another idempotency key")]
    ForeignKey,
    #[error("success answer describes another beneficiary")]
    AnotherBeneficiary,
    #[error("validation answered 2xx with valid: false")]
    ValidFalse,
    #[error("validation answer is not a verdict")]
    NotAVerdict(#[source] serde_json::Error),
    #[error("retry held: the breaker in front of BOS is open")]
    Held,
}

impl BosFault {
    fn unavailable(self) -> BackendError {
        BackendError::Unavailable(UpstreamCause::new(self))
    }
    fn bad(self) -> BackendError {
        BackendError::BadResponse(UpstreamCause::new(self))
    }
}

#[derive(Debug, Clone)]
pub struct BosConfig {
    /// Base URL, e.g. `http://127.0.0.1:3100` (`BOS_URL`).
    pub base_url: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts per item, the first included (`BOS_MAX_ATTEMPTS`).
    pub max_attempts: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl BosConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            connect_timeout: Duration::from_millis(1_000),
            request_timeout: Duration::from_millis(5_000),
            max_attempts: 4,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(2_000),
        }
    }

    /// Reads `BOS_URL` (required) and the optional `BOS_CONNECT_TIMEOUT_MS`,
    /// `BOS_REQUEST_TIMEOUT_MS` and `BOS_MAX_ATTEMPTS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let base = std::env::var("BOS_URL").map_err(|_| ConfigError::MissingUrl)?;
        let mut c = Self::new(base);
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .map(Some)
                    .map_err(|source| ConfigError::Invalid { name, source }),
                _ => Ok(None),
            }
        };
        if let Some(v) = number("BOS_CONNECT_TIMEOUT_MS")? {
            c.connect_timeout = Duration::from_millis(v);
        }
        if let Some(v) = number("BOS_REQUEST_TIMEOUT_MS")? {
            c.request_timeout = Duration::from_millis(v);
        }
        if let Some(v) = number("BOS_MAX_ATTEMPTS")? {
            c.max_attempts = v.max(1) as usize;
        }
        Ok(c)
    }
}

/// Why the client's configuration cannot be read. Its `Debug` is the cause chain, since that is
/// what a function prints when it refuses to start.
#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("BOS_URL is not set")]
    MissingUrl,
    #[error("{name} is invalid")]
    Invalid {
        name: &'static str,
        #[source]
        source: std::num::ParseIntError,
    },
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", tasks_core::error::Chain(self))
    }
}

#[derive(Clone)]
pub struct BosClient {
    http: reqwest::Client,
    create_url: String,
    validate_url: String,
    config: BosConfig,
    gate: Arc<dyn CallGate>,
}

/// The two calls BOS offers, which share time-outs, classification and retries.
#[derive(Clone, Copy)]
enum Call {
    Create,
    Validate,
}

/// How one attempt failed, and whether *this call* tries again. That is not whether the
/// answer is final for the item: a time-out stops the call (no time is left) but is not
/// permanent, and the item's next delivery asks again (`BackendError::is_permanent`).
#[derive(Debug)]
enum AttemptError {
    /// Worth another attempt within this call, after `retry_after` if BOS named one.
    Retry {
        error: BackendError,
        retry_after: Option<Duration>,
    },
    /// This call ends with this answer.
    Stop(BackendError),
}

impl AttemptError {
    fn into_backend(self) -> BackendError {
        match self {
            Self::Retry { error, .. } | Self::Stop(error) => error,
        }
    }
}

#[derive(Deserialize)]
struct BosErrorBody {
    error: BosError,
}

#[derive(Deserialize)]
struct BosError {
    code: String,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

impl BosClient {
    pub fn new(config: BosConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // A redirect followed by reqwest becomes a GET: the create would never be made, and
            // the page redirected to would be taken for BOS's answer.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let base = config.base_url.trim_end_matches('/');
        Ok(Self {
            http,
            create_url: format!("{base}/v1/beneficiaries"),
            validate_url: format!("{base}/v1/beneficiaries/validate"),
            config,
            gate: Arc::new(AlwaysOpen),
        })
    }

    /// Reports every attempt to `gate` and asks it before every retry.
    pub fn with_gate(mut self, gate: Arc<dyn CallGate>) -> Self {
        self.gate = gate;
        self
    }

    /// One HTTP attempt; `Ok` holds the success body (at most [`MAX_ANSWER_BYTES`]).
    async fn attempt(
        &self,
        call: Call,
        beneficiary: &Beneficiary,
        key: &str,
        deadline: Instant,
    ) -> Result<Vec<u8>, AttemptError> {
        let url = match call {
            Call::Create => &self.create_url,
            Call::Validate => &self.validate_url,
        };

        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttemptError::Stop(BackendError::Timeout));
        }
        let started = Instant::now();
        let mut request = self.http.post(url).header("Idempotency-Key", key);
        // Each attempt is a span of the trace the work runs in (the request that created the
        // task): W3C for BOS's own tracing, X-Ray's header for AWS's.
        if let Some(span) = trace::current().map(|t| t.child()) {
            request = request
                .header("traceparent", span.traceparent())
                .header("X-Amzn-Trace-Id", span.xray_header());
        }
        let sent = request
            .timeout(self.config.request_timeout.min(left))
            .json(beneficiary)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(AttemptError::Retry {
                    error: BackendError::Timeout,
                    retry_after: None,
                })
            }
            Err(e) => {
                return Err(AttemptError::Retry {
                    error: BosFault::Request(e.without_url()).unavailable(),
                    retry_after: None,
                })
            }
        };
        let status = response.status();
        tracing::debug!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "bos answered"
        );
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status.is_redirection() {
            return Err(AttemptError::Stop(
                BosFault::Redirect(status.as_u16()).bad(),
            ));
        }
        if status.is_success() {
            return read_capped(response).await.map_err(AttemptError::Stop);
        }

        if status.as_u16() == 429 || status.is_server_error() {
            return Err(AttemptError::Retry {
                error: BackendError::unavailable_status(status.as_u16()),
                retry_after,
            });
        }
        let kind = if status.as_u16() == 409 {
            RejectionKind::Duplicate
        } else {
            RejectionKind::Invalid
        };
        let body = read_capped(response).await.map_err(AttemptError::Stop)?;
        match serde_json::from_slice::<BosErrorBody>(&body) {
            Ok(body) if status.is_client_error() => {
                Err(AttemptError::Stop(BackendError::Rejected(Rejection {
                    kind,
                    code: body.error.code,
                    message: body.error.message,
                    field: body.error.field,
                })))
            }
            _ => Err(AttemptError::Stop(
                BosFault::UnexpectedErrorBody(status.as_u16()).bad(),
            )),
        }
    }
}

impl BosClient {
    /// Runs `call` with retries: capped exponential backoff with full jitter on transient
    /// failures, BOS's `Retry-After` honoured, and no wait that would end past `deadline`.
    async fn with_retries(
        &self,
        call: Call,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<Vec<u8>, BackendError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_attempts.saturating_sub(1));
        let tries = AtomicUsize::new(0);
        let attempt = || async {
            // The first attempt was admitted by the caller; a retry asks again, since the
            // breaker may have opened while this call waited.
            if tries.fetch_add(1, Ordering::Relaxed) > 0 && !self.gate.admit() {
                return Err(AttemptError::Stop(BosFault::Held.unavailable()));
            }
            let answer = self
                .attempt(call, beneficiary, idempotency_key, deadline)
                .await;
            if let Some(health) = health_of(&answer) {
                self.gate.observe(idempotency_key, health);
            }
            answer
        };
        attempt
            .retry(backoff)
            .when(|e| matches!(e, AttemptError::Retry { .. }) && self.gate.admit())
            .adjust(|e, planned| {
                let planned = planned?;
                let jittered = planned.mul_f64(rand::rng().random_range(0.0..=1.0));
                let wait = match e {
                    AttemptError::Retry {
                        retry_after: Some(ra),
                        ..
                    } => jittered.max(*ra),
                    _ => jittered,
                };
                (Instant::now() + wait < deadline).then_some(wait)
            })
            .notify(|e, wait| {
                tracing::info!(error = ?e, wait_ms = wait.as_millis() as u64, "retrying bos call");
            })
            .await
            .map_err(AttemptError::into_backend)
    }
}

/// What an attempt said about BOS's health; `None` for one that never reached BOS.
fn health_of(answer: &Result<Vec<u8>, AttemptError>) -> Option<Health> {
    match answer {
        Ok(_) => Some(Health::Answered),
        Err(AttemptError::Retry { retry_after, .. }) => Some(Health::Failing {
            retry_after: *retry_after,
        }),
        Err(AttemptError::Stop(BackendError::Unavailable(_))) => {
            Some(Health::Failing { retry_after: None })
        }
        // No time was left to ask.
        Err(AttemptError::Stop(BackendError::Timeout)) => None,
        // A rejection, or an answer we distrust: BOS is there.
        Err(AttemptError::Stop(_)) => Some(Health::Answered),
    }
}

/// Reads an answer's body, refusing one over [`MAX_ANSWER_BYTES`] without reading the rest.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, BackendError> {
    let too_large = || BosFault::TooLarge.bad();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(BackendError::Timeout),
            Err(e) => return Err(BosFault::CutShort(e.without_url()).unavailable()),
        }
    }
}

/// A create's success answer, decoded strictly and checked against what was sent: BOS must
/// have created *this* beneficiary.
fn created_from(
    body: &[u8],
    sent: &Beneficiary,
    idempotency_key: &str,
) -> Result<CreatedBeneficiary, BackendError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BosFault::NotJson(e).bad())?;
    // BOS may echo the key; when it does, it must be ours.
    if let Some(echoed) = value.get("idempotency_key") {
        if echoed.as_str() != Some(idempotency_key) {
            return Err(BosFault::ForeignKey.bad());
        }
    }
    let created: CreatedBeneficiary =
        serde_json::from_value(value).map_err(|e| BosFault::NotABeneficiary(e).bad())?;
    let same = created.iban == sent.iban()
        && created.name == sent.name()
        && created.currency == sent.currency()
        && created.country == sent.country();
    if !same || created.id.trim().is_empty() {
        return Err(BosFault::AnotherBeneficiary.bad());
    }
    Ok(created)
}

/// A validation's success answer: only an explicit `{"valid": true}` passes (fail closed).
fn verdict_from(body: &[u8]) -> Result<(), BackendError> {
    #[derive(Deserialize)]
    struct Verdict {
        valid: bool,
    }
    match serde_json::from_slice::<Verdict>(body) {
        Ok(Verdict { valid: true }) => Ok(()),
        Ok(Verdict { valid: false }) => Err(BosFault::ValidFalse.bad()),
        Err(e) => Err(BosFault::NotAVerdict(e).bad()),
    }
}

#[async_trait]
impl BeneficiaryBackend for BosClient {
    // Debug-level spans: one per item, with nothing to add to the chunk's span around them.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create(
        &self,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<CreatedBeneficiary, BackendError> {
        let body = self
            .with_retries(Call::Create, beneficiary, idempotency_key, deadline)
            .await?;
        created_from(&body, beneficiary, idempotency_key)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn validate(
        &self,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<(), BackendError> {
        let body = self
            .with_retries(Call::Validate, beneficiary, idempotency_key, deadline)
            .await?;
        verdict_from(&body)
    }
}
