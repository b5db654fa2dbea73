//! `POST /beneficiaries`: create one beneficiary synchronously, the operation the tasks reuse.

use super::App;
use crate::answer::Answer;
use crate::error::ApiError;
use crate::extract::require_json;
use crate::idempotency::Scope;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use http::HeaderMap;
use std::time::{Duration, Instant};
use tasks_core::task::TaskId;
use tasks_core::usecases::create_beneficiary;

/// Time given to one synchronous create, below API Gateway's 29 s integration limit.
const SYNC_CREATE_BUDGET: Duration = Duration::from_secs(20);

pub async fn create(
    State(app): App,
    scope: Option<Extension<Scope>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    require_json(&headers)?;
    let b = create_beneficiary::parse_body(&body, app.settings.max_body_bytes)?;
    // With a client key, a retried request reaches BOS with the same key and cannot create
    // twice; without one, each request is a new creation.
    let bos_key = match scope {
        Some(Extension(Scope(scope))) => format!("sync:{scope}"),
        None => format!("sync:{}", TaskId::new_random()),
    };
    let deadline = Instant::now() + SYNC_CREATE_BUDGET;
    let created =
        create_beneficiary::create_one(app.backend.as_ref(), &b, &bos_key, deadline).await?;
    Ok(Answer::json(http::StatusCode::CREATED, &created))
}
