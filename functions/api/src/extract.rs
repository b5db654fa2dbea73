//! What handlers read from a request besides its path: the query parameters (as API Gateway
//! parsed them), the body's media type, and whether the client asked for CSV.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use http::request::Parts;
use http::HeaderMap;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::RequestExt;
use std::convert::Infallible;
use tasks_core::tolerance::Tolerance;

/// The query string's parameters; the first value wins where one is repeated.
pub struct Params(QueryMap);

impl Params {
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.first(name)
    }

    /// `tolerated_failure_percent` and `tolerated_failure_count`, as every task create takes
    /// them (inline or from a file).
    pub fn tolerance(&self) -> Result<Tolerance, ApiError> {
        Tolerance::parse(
            self.first("tolerated_failure_percent"),
            self.first("tolerated_failure_count"),
        )
        .map_err(|e| ApiError::App(e.into()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.query_string_parameters()))
    }
}

/// The request's media type, lower case and without parameters (`text/csv; charset=utf-8`
/// is `text/csv`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(bare_media_type)
}

/// Whether the client asked for CSV: `text/csv` named in `Accept` before `application/json`
/// (a bare `*/*`, or no header, is JSON).
pub fn wants_csv(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .map(bare_media_type)
        .find(|m| m == "text/csv" || m == "application/json")
        .is_some_and(|m| m == "text/csv")
}

/// Refuses a body that is not JSON (`application/json` or any `+json` type).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    media_type(headers)
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
        .then_some(())
        .ok_or(ApiError::UnsupportedMediaType)
}

fn bare_media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
