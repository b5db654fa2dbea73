//! HTTP client for the upstream back-office service (BOS), the adapter behind the core's
//! [`BeneficiaryBackend`] port.
//!
//! - Connect and per-request time-outs, so a hung BOS costs a bounded wait.
//! - Answers are classified: 2xx success; 409 and 4xx business rejections are permanent;
//!   429, 5xx, time-outs and connection failures are transient.
//! - Transient failures are retried with capped exponential backoff and full jitter
//!   (`backon`), honouring `Retry-After`, and never past the caller's deadline.
//! - Every attempt carries the same `Idempotency-Key`, so a retry can never create twice.

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use rand::Rng;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tasks_core::beneficiary::{Beneficiary, CreatedBeneficiary};
use tasks_core::ports::{BackendError, BeneficiaryBackend, Rejection, RejectionKind};

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
    pub fn from_env() -> Result<Self, String> {
        let base = std::env::var("BOS_URL").map_err(|_| "BOS_URL is not set".to_owned())?;
        let mut c = Self::new(base);
        let ms = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name} is invalid")),
                _ => Ok(None),
            }
        };
        if let Some(v) = ms("BOS_CONNECT_TIMEOUT_MS")? {
            c.connect_timeout = Duration::from_millis(v);
        }
        if let Some(v) = ms("BOS_REQUEST_TIMEOUT_MS")? {
            c.request_timeout = Duration::from_millis(v);
        }
        if let Some(v) = ms("BOS_MAX_ATTEMPTS")? {
            c.max_attempts = v.max(1) as usize;
        }
        Ok(c)
    }
}

#[derive(Clone)]
pub struct BosClient {
    http: reqwest::Client,
    create_url: String,
    validate_url: String,
    config: BosConfig,
}

/// The two calls BOS offers, which share time-outs, classification and retries.
#[derive(Clone, Copy)]
enum Call {
    Create,
    Validate,
}

/// How one attempt failed, before retry decisions.
#[derive(Debug)]
enum AttemptError {
    Transient {
        error: BackendError,
        retry_after: Option<Duration>,
    },
    Permanent(BackendError),
}

impl AttemptError {
    fn into_backend(self) -> BackendError {
        match self {
            Self::Transient { error, .. } | Self::Permanent(error) => error,
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
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let base = config.base_url.trim_end_matches('/');
        Ok(Self {
            http,
            create_url: format!("{base}/v1/beneficiaries"),
            validate_url: format!("{base}/v1/beneficiaries/validate"),
            config,
        })
    }

    /// One HTTP attempt; `Ok` holds the success body.
    async fn attempt(
        &self,
        call: Call,
        beneficiary: &Beneficiary,
        key: &str,
        deadline: Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let url = match call {
            Call::Create => &self.create_url,
            Call::Validate => &self.validate_url,
        };

        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttemptError::Permanent(BackendError::Timeout));
        }
        let started = Instant::now();
        let sent = self
            .http
            .post(url)
            .header("Idempotency-Key", key)
            .timeout(self.config.request_timeout.min(left))
            .json(beneficiary)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(AttemptError::Transient {
                    error: BackendError::Timeout,
                    retry_after: None,
                })
            }
            Err(e) => {
                return Err(AttemptError::Transient {
                    error: BackendError::Unavailable(format!(
                        "request failed: {}",
                        e.without_url()
                    )),
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
        if status.is_success() {
            return Ok(response);
        }

        if status.as_u16() == 429 || status.is_server_error() {
            return Err(AttemptError::Transient {
                error: BackendError::Unavailable(format!("status {}", status.as_u16())),
                retry_after,
            });
        }
        let kind = if status.as_u16() == 409 {
            RejectionKind::Duplicate
        } else {
            RejectionKind::Invalid
        };
        match response.json::<BosErrorBody>().await {
            Ok(body) if status.is_client_error() => {
                Err(AttemptError::Permanent(BackendError::Rejected(Rejection {
                    kind,
                    code: body.error.code,
                    message: body.error.message,
                    field: body.error.field,
                })))
            }
            _ => Err(AttemptError::Permanent(BackendError::BadResponse(format!(
                "status {} with an unexpected body",
                status.as_u16()
            )))),
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
    ) -> Result<reqwest::Response, BackendError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_attempts.saturating_sub(1));
        (|| self.attempt(call, beneficiary, idempotency_key, deadline))
            .retry(backoff)
            .when(|e| matches!(e, AttemptError::Transient { .. }))
            .adjust(|e, planned| {
                let planned = planned?;
                let jittered = planned.mul_f64(rand::rng().random_range(0.0..=1.0));
                let wait = match e {
                    AttemptError::Transient {
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

fn undecodable(e: reqwest::Error) -> BackendError {
    BackendError::BadResponse(format!("undecodable success body: {}", e.without_url()))
}

#[async_trait]
impl BeneficiaryBackend for BosClient {
    #[tracing::instrument(skip_all)]
    async fn create(
        &self,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<CreatedBeneficiary, BackendError> {
        let response = self
            .with_retries(Call::Create, beneficiary, idempotency_key, deadline)
            .await?;
        response.json().await.map_err(undecodable)
    }

    #[tracing::instrument(skip_all)]
    async fn validate(
        &self,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<(), BackendError> {
        self.with_retries(Call::Validate, beneficiary, idempotency_key, deadline)
            .await
            .map(drop)
    }
}
