//! A stand-in for the upstream back-office service (BOS), for local runs, tests and
//! benchmarks. Real HTTP, with the behaviour the task machinery must cope with:
//! - `POST /v1/beneficiaries` creates a beneficiary; an `Idempotency-Key` seen before returns
//!   the first answer and creates nothing (a replay);
//! - `POST /v1/beneficiaries/validate` applies the same rules and creates nothing;
//! - business rejections: an IBAN that already has a beneficiary (409
//!   `duplicate_beneficiary`), a payout currency BOS does not support (422
//!   `unsupported_currency`);
//! - knobs, set at start or at run time through `PUT /admin/config`: fixed latency plus
//!   jitter, and a rate of transient failures (503);
//! - counters at `GET /v1/stats`, so tests and benchmarks can prove "created exactly once".

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Currencies BOS pays out in; anything else is a business rejection.
pub const SUPPORTED_CURRENCIES: [&str; 12] = [
    "EUR", "GBP", "USD", "CHF", "PLN", "SEK", "NOK", "DKK", "CZK", "HUF", "RON", "JPY",
];

/// An IBAN (a public specimen) that already has a beneficiary when the simulator starts, so
/// a walk-through can show a duplicate rejection.
pub const EXISTING_IBAN: &str = "GB33BUKB20201555555555";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Knobs {
    /// Fixed latency added to every create, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Random extra latency, uniform in 0..=jitter_ms.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Share of creates answered 503 before anything happens (0.0 to 1.0).
    #[serde(default)]
    pub failure_rate: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub creations: u64,
    pub replays: u64,
    pub rejections: u64,
    pub transient_failures: u64,
    pub validations: u64,
}

#[derive(Default)]
struct Inner {
    knobs: Knobs,
    stats: Stats,
    ibans: HashSet<String>,
    answers: HashMap<String, (u16, Value)>,
}

/// Shared state. A std Mutex suffices: it is never held across an `.await`.
#[derive(Clone, Default)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
}

impl Simulator {
    pub fn new(knobs: Knobs, existing_ibans: &[&str]) -> Self {
        let sim = Self::default();
        {
            let mut inner = sim.lock();
            inner.knobs = knobs;
            inner.ibans = existing_ibans.iter().map(|s| s.to_string()).collect();
        }
        sim
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.lock().knobs = knobs;
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/beneficiaries", post(create))
            .route("/v1/beneficiaries/validate", post(validate))
            .route("/v1/stats", get(stats))
            .route("/admin/config", get(get_config).put(put_config))
            .with_state(self.clone())
    }

    /// Serves on `listener` until the task is dropped or aborted.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}

fn error(code: &str, message: &str, field: Option<&str>) -> Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

/// The business rules both calls apply: `Err` is the rejection to answer.
fn check(inner: &Inner, body: &Value) -> Result<String, (u16, Value)> {
    let text = |f: &str| body.get(f).and_then(Value::as_str).map(str::to_owned);
    match (
        text("name"),
        text("country"),
        text("currency"),
        text("iban"),
    ) {
        (Some(_), Some(_), Some(currency), Some(iban)) => {
            if !SUPPORTED_CURRENCIES.contains(&currency.as_str()) {
                Err((
                    422,
                    error(
                        "unsupported_currency",
                        "BOS does not pay out in this currency.",
                        Some("currency"),
                    ),
                ))
            } else if inner.ibans.contains(&iban) {
                Err((
                    409,
                    error(
                        "duplicate_beneficiary",
                        "A beneficiary with this IBAN already exists.",
                        Some("iban"),
                    ),
                ))
            } else {
                Ok(iban)
            }
        }
        _ => Err((
            422,
            error(
                "invalid_request",
                "name, country, currency and iban are required.",
                None,
            ),
        )),
    }
}

/// Sleeps the configured latency; `Err` when this request is picked to fail transiently.
async fn simulate_conditions(sim: &Simulator) -> Result<(), (StatusCode, Json<Value>)> {
    let knobs = {
        let mut inner = sim.lock();
        inner.stats.requests += 1;
        inner.knobs.clone()
    };
    let jitter = if knobs.jitter_ms > 0 {
        rand::rng().random_range(0..=knobs.jitter_ms)
    } else {
        0
    };
    if knobs.latency_ms + jitter > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_ms + jitter)).await;
    }
    if knobs.failure_rate > 0.0 && rand::rng().random_bool(knobs.failure_rate.clamp(0.0, 1.0)) {
        sim.lock().stats.transient_failures += 1;
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(error("unavailable", "Try again later.", None)),
        ));
    }
    Ok(())
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn validate(State(sim): State<Simulator>, body: Json<Value>) -> (StatusCode, Json<Value>) {
    if let Err(answer) = simulate_conditions(&sim).await {
        return answer;
    }
    let mut inner = sim.lock();
    inner.stats.validations += 1;
    match check(&inner, &body) {
        Ok(_) => (StatusCode::OK, Json(json!({"valid": true}))),
        Err((code, answer)) => {
            inner.stats.rejections += 1;
            (status(code), Json(answer))
        }
    }
}

async fn create(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Json<Value>,
) -> (StatusCode, Json<Value>) {
    if let Err(answer) = simulate_conditions(&sim).await {
        return answer;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut inner = sim.lock();
    if let Some((code, answer)) = key.as_ref().and_then(|k| inner.answers.get(k).cloned()) {
        inner.stats.replays += 1;
        return (status(code), Json(answer));
    }
    let (code, answer) = match check(&inner, &body) {
        Ok(iban) => {
            inner.ibans.insert(iban);
            inner.stats.creations += 1;
            let mut created = body.0.clone();
            created["id"] = json!(format!("ben_{}", uuid::Uuid::new_v4().simple()));
            created["created_at"] = json!(time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default());
            (201, created)
        }
        Err(rejection) => {
            inner.stats.rejections += 1;
            rejection
        }
    };
    if let Some(key) = key {
        inner.answers.insert(key, (code, answer.clone()));
    }
    (status(code), Json(answer))
}

async fn stats(State(sim): State<Simulator>) -> Json<Stats> {
    Json(sim.stats())
}

async fn get_config(State(sim): State<Simulator>) -> Json<Knobs> {
    Json(sim.lock().knobs.clone())
}

async fn put_config(State(sim): State<Simulator>, Json(knobs): Json<Knobs>) -> Json<Knobs> {
    sim.set_knobs(knobs.clone());
    Json(knobs)
}
