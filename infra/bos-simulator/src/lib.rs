//! A stand-in for the upstream back-office service (BOS), for local runs, tests and
//! benchmarks. Real HTTP, with the behaviour the task machinery must cope with:
//! - `POST /v1/beneficiaries` creates a beneficiary; an `Idempotency-Key` seen before returns
//!   the first answer and creates nothing (a replay);
//! - `POST /v1/beneficiaries/validate` applies the same rules and creates nothing;
//! - business rejections: an IBAN that already has a beneficiary (409
//!   `duplicate_beneficiary`), a payout currency BOS does not support (422
//!   `unsupported_currency`);
//! - faults, set at start or at run time through `PUT /admin/config` ([`Knobs`]): latency
//!   with jitter, transient failures (500/503/429 with `Retry-After`), answers lost after the
//!   work was done, hangs past the client's time-out, IBANs that always fail;
//! - counters at `GET /v1/stats` ([`Stats`]), so tests and benchmarks can prove "created
//!   exactly once", and the most calls it ever had in progress at once (`peak_concurrency`),
//!   so they can prove the BOS cap holds;
//! - the trace headers of every call (`traceparent`, `X-Amzn-Trace-Id`) at `GET /v1/traces`
//!   ([`SeenCall`]), so tests can prove that a task's trace reaches BOS.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

mod faults;

use faults::{after_work, before_work, elsewhere, misbehaviour, roll};
pub use faults::{Knobs, Misbehaviour};

/// Currencies BOS pays out in; anything else is a business rejection.
pub const SUPPORTED_CURRENCIES: [&str; 12] = [
    "EUR", "GBP", "USD", "CHF", "PLN", "SEK", "NOK", "DKK", "CZK", "HUF", "RON", "JPY",
];

/// An IBAN (a public specimen) that already has a beneficiary when the simulator starts, so
/// a walk-through can show a duplicate rejection.
pub const EXISTING_IBAN: &str = "GB33BUKB20201555555555";

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    /// Beneficiaries created: never more than one per idempotency key.
    pub creations: u64,
    /// Requests answered from an earlier answer to the same idempotency key.
    pub replays: u64,
    pub rejections: u64,
    pub transient_failures: u64,
    pub lost_responses: u64,
    pub hangs: u64,
    pub validations: u64,
    /// Calls (creates and validations) in progress now.
    pub in_flight: u64,
    /// The most calls that were ever in progress at once.
    pub peak_concurrency: u64,
}

/// What the simulator keeps of one call (create or validation) for tracing checks: its
/// trace headers and idempotency key, never its body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeenCall {
    /// When the call arrived, in Unix milliseconds.
    #[serde(default)]
    pub at_ms: u64,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub traceparent: Option<String>,
    pub xray: Option<String>,
}

/// The most calls [`Simulator::calls`] remembers: the latest ones, so a long local run stays
/// within a few megabytes.
pub const SEEN_CALLS_KEPT: usize = 50_000;

#[derive(Default)]
struct Inner {
    knobs: Knobs,
    stats: Stats,
    calls: std::collections::VecDeque<SeenCall>,
    ibans: HashSet<String>,
    /// Idempotency key → (request body, status, answer).
    answers: HashMap<String, (Value, u16, Value)>,
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

    /// The calls seen so far (the latest [`SEEN_CALLS_KEPT`]), oldest first.
    pub fn calls(&self) -> Vec<SeenCall> {
        self.lock().calls.iter().cloned().collect()
    }

    /// When the remembered calls arrived, in Unix milliseconds within `[from, to)`, sorted:
    /// what tests and benchmarks count to see what BOS saw during an outage.
    pub fn calls_between(&self, from: u64, to: u64) -> Vec<u64> {
        let mut at: Vec<u64> = self
            .lock()
            .calls
            .iter()
            .map(|c| c.at_ms)
            .filter(|at| (from..to).contains(at))
            .collect();
        at.sort_unstable();
        at
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.lock().knobs = knobs;
    }

    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/beneficiaries", post(create))
            .route("/v1/beneficiaries/validate", post(validate))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                count_in_flight,
            ))
            .route("/v1/stats", get(stats))
            .route("/v1/traces", get(traces))
            .route("/v1/elsewhere", get(elsewhere).post(elsewhere))
            .route("/admin/config", get(get_config).put(put_config))
            .with_state(self.clone())
    }

    /// Serves on `listener` until the task is dropped or aborted.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}

/// Remembers the call's trace headers ([`SeenCall`]), and counts it in progress from the moment
/// its request arrives until its answer is sent or the client gives up (the guard is dropped
/// with the request's future either way).
async fn count_in_flight(
    State(sim): State<Simulator>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    struct InFlight(Simulator);
    impl Drop for InFlight {
        fn drop(&mut self) {
            let mut inner = self.0.lock();
            inner.stats.in_flight = inner.stats.in_flight.saturating_sub(1);
        }
    }
    let seen = {
        // Scoped: a borrow of the request (whose body is not `Sync`) must not live across the
        // `.await` below.
        let headers = request.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        SeenCall {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            path: request.uri().path().to_owned(),
            idempotency_key: header("idempotency-key"),
            traceparent: header("traceparent"),
            xray: header("x-amzn-trace-id"),
        }
    };
    let _guard = {
        let mut inner = sim.lock();
        if inner.calls.len() == SEEN_CALLS_KEPT {
            inner.calls.pop_front();
        }
        inner.calls.push_back(seen);
        inner.stats.in_flight += 1;
        inner.stats.peak_concurrency = inner.stats.peak_concurrency.max(inner.stats.in_flight);
        InFlight(sim.clone())
    };
    next.run(request).await
}

fn error(code: &str, message: &str, field: Option<&str>) -> Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

fn answer(code: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

fn unavailable() -> Response {
    answer(503, error("unavailable", "Try again later.", None))
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

async fn validate(State(sim): State<Simulator>, Json(body): Json<Value>) -> Response {
    let knobs = match before_work(&sim, &body).await {
        Ok(k) => k,
        Err(res) => return res,
    };
    if let Some(res) = misbehaviour(&knobs) {
        return res;
    }
    let res = {
        let mut inner = sim.lock();
        inner.stats.validations += 1;
        match check(&inner, &body) {
            Ok(_) => answer(200, json!({"valid": true})),
            Err((code, rejection)) => {
                inner.stats.rejections += 1;
                answer(code, rejection)
            }
        }
    };
    after_work(&sim, &knobs, res, false).await
}

async fn create(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let knobs = match before_work(&sim, &body).await {
        Ok(k) => k,
        Err(res) => return res,
    };
    if let Some(res) = misbehaviour(&knobs) {
        return res;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (res, fresh) = {
        let mut inner = sim.lock();
        match key.as_ref().and_then(|k| inner.answers.get(k).cloned()) {
            Some((first_body, _, _)) if first_body != body => (
                answer(
                    422,
                    error(
                        "idempotency_key_reused",
                        "This key was used with another request.",
                        None,
                    ),
                ),
                false,
            ),
            Some((_, code, first)) => {
                inner.stats.replays += 1;
                (answer(code, first), false)
            }
            None => {
                let (code, reply) = match check(&inner, &body) {
                    Ok(iban) => {
                        inner.ibans.insert(iban);
                        inner.stats.creations += 1;
                        let mut created = body.clone();
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
                if let Some(key) = &key {
                    inner
                        .answers
                        .insert(key.clone(), (body.clone(), code, reply.clone()));
                }
                (answer(code, reply), true)
            }
        }
    };
    // Only a first answer can be lost; what BOS did stays done either way.
    let lose = fresh && roll(knobs.lost_response_rate);
    after_work(&sim, &knobs, res, lose).await
}

async fn stats(State(sim): State<Simulator>) -> Json<Stats> {
    Json(sim.stats())
}

async fn traces(State(sim): State<Simulator>) -> Json<Vec<SeenCall>> {
    Json(sim.calls())
}

async fn get_config(State(sim): State<Simulator>) -> Json<Knobs> {
    Json(sim.knobs())
}

async fn put_config(State(sim): State<Simulator>, Json(knobs): Json<Knobs>) -> Json<Knobs> {
    sim.set_knobs(knobs.clone());
    Json(knobs)
}
