//! The knobs ([`Knobs`], [`Misbehaviour`]) and what they do to a call: latency, transient
//! failures, lost answers, hangs, and the answers of a broken or hostile upstream.

use crate::{answer, error, unavailable, Simulator};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// What can go wrong, and how slow it is. Rates are shares of calls, 0.0 to 1.0.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Knobs {
    /// Fixed latency of every call, in milliseconds.
    pub latency_ms: u64,
    /// Random extra latency, uniform in 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Calls answered with a transient failure before anything happens.
    pub failure_rate: f64,
    /// Statuses those failures use, picked at random (default: 503).
    pub failure_statuses: Vec<u16>,
    /// `Retry-After` seconds sent with 429 answers.
    pub retry_after_secs: u64,
    /// Creates that are carried out but answered 503, as if the answer were lost on the way.
    pub lost_response_rate: f64,
    /// Calls that, their work done, wait `hang_ms` before answering.
    pub hang_rate: f64,
    pub hang_ms: u64,
    /// IBANs whose calls always fail with 503.
    pub failing_ibans: Vec<String>,
    /// Calls refused as a business rejection (422 `beneficiary_refused`), nothing created: a
    /// file BOS refuses row by row.
    pub refuse_rate: f64,
    /// Misbehaviour an upstream can show, for the client's distrust to be tested against.
    pub misbehave: Misbehaviour,
}

/// Answers a broken or hostile upstream gives. Each applies to every create and validation,
/// instead of doing the work.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Misbehaviour {
    #[default]
    None,
    /// 302 to `/v1/elsewhere`, a page that answers 200 with a beneficiary-shaped body.
    Redirect,
    /// 201 with somebody else's beneficiary; nothing is created.
    OtherBeneficiary,
    /// 200 with an HTML page.
    NotJson,
    /// 200 with a 20 MB body.
    HugeAnswer,
}

pub(crate) fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::rng().random_bool(rate.clamp(0.0, 1.0))
}

/// Latency, then the faults that strike before any work: `Err` is the answer to send.
pub(crate) async fn before_work(sim: &Simulator, body: &Value) -> Result<Knobs, Response> {
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
    let iban = body.get("iban").and_then(Value::as_str).unwrap_or_default();
    if knobs.failing_ibans.iter().any(|f| f == iban) {
        sim.lock().stats.transient_failures += 1;
        return Err(unavailable());
    }
    if roll(knobs.failure_rate) {
        sim.lock().stats.transient_failures += 1;
        let statuses = if knobs.failure_statuses.is_empty() {
            vec![503]
        } else {
            knobs.failure_statuses.clone()
        };
        let code = statuses[rand::rng().random_range(0..statuses.len())];
        let mut res = answer(code, error("unavailable", "Try again later.", None));
        if code == 429 {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from(knobs.retry_after_secs));
        }
        return Err(res);
    }
    if roll(knobs.refuse_rate) {
        sim.lock().stats.rejections += 1;
        return Err(answer(
            422,
            error(
                "beneficiary_refused",
                "The back office refused this beneficiary.",
                None,
            ),
        ));
    }
    Ok(knobs)
}

/// The faults that strike after the work was done.
pub(crate) async fn after_work(
    sim: &Simulator,
    knobs: &Knobs,
    res: Response,
    lose: bool,
) -> Response {
    if roll(knobs.hang_rate) {
        sim.lock().stats.hangs += 1;
        tokio::time::sleep(Duration::from_millis(knobs.hang_ms)).await;
    }
    if lose {
        sim.lock().stats.lost_responses += 1;
        return unavailable();
    }
    res
}

/// A page a redirect leads to: 200 with a beneficiary-shaped body, as a wrong turn would give.
pub(crate) async fn elsewhere() -> Response {
    answer(
        200,
        json!({"id": "ben_elsewhere", "name": "Someone Else", "country": "GB", "currency": "GBP",
               "iban": "GB82WEST12345698765432", "created_at": "2026-01-01T00:00:00Z", "valid": true}),
    )
}

/// The misbehaving answer to send instead of doing the work, if any.
pub(crate) fn misbehaviour(knobs: &Knobs) -> Option<Response> {
    match knobs.misbehave {
        Misbehaviour::None => None,
        Misbehaviour::Redirect => Some(
            (
                StatusCode::FOUND,
                [(axum::http::header::LOCATION, "/v1/elsewhere")],
            )
                .into_response(),
        ),
        Misbehaviour::OtherBeneficiary => Some(answer(
            201,
            json!({"id": "ben_other", "name": "Someone Else", "country": "GB", "currency": "GBP",
                   "iban": "GB33BUKB20201555555555", "created_at": "2026-01-01T00:00:00Z"}),
        )),
        Misbehaviour::NotJson => Some(
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "text/html")],
                "<html><body>OK</body></html>",
            )
                .into_response(),
        ),
        Misbehaviour::HugeAnswer => {
            let body = format!(
                r#"{{"valid": true, "padding": "{}"}}"#,
                "x".repeat(20 * 1024 * 1024)
            );
            Some(
                (
                    StatusCode::OK,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response(),
            )
        }
    }
}
