//! `/tasks/{task_type}/uploads` and `/tasks/{task_type}/{task_id}/upload-complete`: a task made
//! from a file the client uploads straight to storage (`tasks_core::upload`).

use super::App;
use crate::answer::Answer;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{require_json, Params};
use crate::paths::{TaskPath, TaskTypePath};
use axum::body::Bytes;
use axum::extract::State;
use http::HeaderMap;
use tasks_core::usecases::upload_task::{self, UploadSession};
use time::OffsetDateTime;

/// `201` with the task `awaiting_upload` and its `upload` instructions.
pub async fn open(
    State(app): App,
    Caller(owner): Caller,
    TaskTypePath(task_type): TaskTypePath,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    let tolerance = params.tolerance()?;
    require_json(&headers)?;
    let upload = upload_task::parse_upload(&body)?;
    let session = UploadSession {
        owner,
        task_type,
        upload,
        tolerance,
    };
    let now = OffsetDateTime::now_utc();
    let (store, files) = (app.store.as_ref(), app.files.as_ref());
    let view = upload_task::open(store, files, &app.settings, session, now).await?;
    tracing::Span::current().record("task_id", tracing::field::display(view.task_id));
    Ok(Answer::json(http::StatusCode::CREATED, &view).header("location", &view.links.self_))
}

/// `202` with the task `validating` (or as it stands, for a repeated close).
pub async fn complete(
    State(app): App,
    Caller(owner): Caller,
    task: TaskPath,
) -> Result<Answer, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (store, files, ingest) = (app.store.as_ref(), app.files.as_ref(), app.ingest.as_ref());
    let task =
        upload_task::complete(store, files, ingest, &owner, task.task_type, task.id, now).await?;
    Ok(Answer::accepted(&task))
}
