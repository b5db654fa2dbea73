//! `/tasks/{task_type}` and `/tasks/{task_type}/{task_id}`: submit a batch (JSON or CSV),
//! list the caller's tasks, read one.

use super::App;
use crate::answer::Answer;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{media_type, require_json, Params};
use crate::paths::{TaskPath, TaskTypePath};
use axum::body::Bytes;
use axum::extract::State;
use http::HeaderMap;
use tasks_core::usecases::submit_task::{self, Batch, Submission};
use tasks_core::usecases::{read_task, upload_task};
use time::OffsetDateTime;

pub async fn submit(
    State(app): App,
    Caller(owner): Caller,
    TaskTypePath(task_type): TaskTypePath,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    let tolerance = params.tolerance()?;
    let batch = match media_type(&headers).as_deref() {
        Some("text/csv") => Batch::Csv(&body),
        _ => {
            require_json(&headers)?;
            Batch::Json(&body)
        }
    };
    let now = OffsetDateTime::now_utc();
    let (store, settings) = (app.store.as_ref(), &app.settings);
    let task = submit_task::submit(
        store,
        app.scheduler(),
        settings,
        Submission {
            owner,
            task_type,
            batch,
            tolerance,
        },
        now,
    )
    .await?;
    tracing::Span::current().record("task_id", tracing::field::display(task.id));
    Ok(Answer::accepted(&task))
}

pub async fn list(
    State(app): App,
    Caller(owner): Caller,
    TaskTypePath(task_type): TaskTypePath,
    params: Params,
) -> Result<Answer, ApiError> {
    let query = read_task::TaskListQuery {
        owner: &owner,
        task_type,
        status: params.first("status"),
        page_token: params.first("page_token"),
        limit: read_task::parse_limit(params.first("limit"), read_task::TASK_PAGE)?,
    };
    let now = OffsetDateTime::now_utc();
    let page = read_task::list_tasks(app.store.as_ref(), &app.tokens, &query, now).await?;
    Ok(Answer::ok(&page))
}

pub async fn get(
    State(app): App,
    Caller(owner): Caller,
    task: TaskPath,
) -> Result<Answer, ApiError> {
    let now = OffsetDateTime::now_utc();
    let store = app.store.as_ref();
    let task = read_task::get_task(store, &owner, task.task_type, task.id, now).await?;
    Ok(Answer::ok(
        &upload_task::view(app.files.as_ref(), &task, now).await?,
    ))
}
