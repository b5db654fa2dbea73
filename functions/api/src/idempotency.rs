//! The `Idempotency-Key` layer of the POST routes: a request carrying a key is claimed before
//! its handler runs, and its answer is kept for replays (`usecases::idempotency` says what
//! "the same request" means and which answers are kept). The handler that calls BOS itself
//! (the single create) reads the record's [`Scope`] to key its BOS call alike.

use crate::answer::Answer;
use crate::app::Services;
use crate::auth::Caller;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tasks_core::error::AppError;
use tasks_core::usecases::idempotency::{self, IdempotencyKey};
use time::OffsetDateTime;

/// The caller-bound record key of a request that carried an `Idempotency-Key`.
#[derive(Clone)]
pub struct Scope(pub String);

pub async fn layer(
    State(app): State<Arc<Services>>,
    Caller(owner): Caller,
    req: Request,
    next: Next,
) -> Response {
    match claimed(&app, &owner, req, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn claimed(
    app: &Services,
    owner: &tasks_core::identity::Owner,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = match req.headers().get("idempotency-key") {
        Some(raw) if req.method() == http::Method::POST => {
            IdempotencyKey::parse(raw.to_str().map_err(|_| AppError::InvalidIdempotencyKey)?)?
        }
        _ => return Ok(next.run(req).await),
    };
    let scope = key.scope(owner);
    let (mut parts, body) = req.into_parts();
    // API Gateway hands the function the whole body already; this only collects it.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| AppError::InvalidBody("the body could not be read"))?;
    // The query is part of what was asked (`…/retry?include=all_failed`).
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let fingerprint = idempotency::fingerprint(parts.method.as_str(), &target, &body);
    let now = OffsetDateTime::now_utc();
    let store = app.idempotency.as_ref();
    let ttl = app.settings.idempotency_ttl;
    if let Some(previous) = idempotency::begin(store, &scope, &fingerprint, now, ttl).await? {
        return Ok(Answer::replayed(previous).into_response());
    }
    parts.extensions.insert(Scope(scope.clone()));
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(body)))
        .await;
    let answer = Answer::from_response(response).await;
    idempotency::finish(store, &scope, &answer.stored()).await;
    Ok(answer.into_response())
}
