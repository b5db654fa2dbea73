//! What is done to a task's items: read their errors and results (JSON pages, or CSV files
//! linked page to page), retry the failed ones as a new task, cancel those not yet started.

use super::App;
use crate::answer::Answer;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{wants_csv, Params};
use crate::paths::TaskPath;
use axum::extract::{FromRequestParts, State};
use http::request::Parts;
use http::{HeaderMap, Uri};
use tasks_core::csv_output;
use tasks_core::identity::Owner;
use tasks_core::ports::OutcomeFilter;
use tasks_core::usecases::{cancel_task, read_task, retry_task};
use time::OffsetDateTime;

pub async fn cancel(
    State(app): App,
    Caller(owner): Caller,
    task: TaskPath,
) -> Result<Answer, ApiError> {
    let now = OffsetDateTime::now_utc();
    let store = app.store.as_ref();
    let task = cancel_task::cancel_task(
        store,
        &owner,
        task.task_type,
        task.id,
        now,
        app.settings.retention,
    )
    .await?;
    Ok(Answer::json(http::StatusCode::ACCEPTED, &task.view()))
}

pub async fn retry(
    State(app): App,
    Caller(owner): Caller,
    task: TaskPath,
    params: Params,
) -> Result<Answer, ApiError> {
    let request = retry_task::RetryRequest {
        owner: &owner,
        task_type: task.task_type,
        id: task.id,
        scope: retry_task::RetryScope::parse(params.first("include"))?,
    };
    let now = OffsetDateTime::now_utc();
    let (store, settings) = (app.store.as_ref(), &app.settings);
    let task = retry_task::retry(store, app.scheduler(), settings, &request, now).await?;
    Ok(Answer::accepted(&task))
}

/// Which outcomes a read lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcomes {
    Errors,
    Result,
}

/// `GET …/errors`: JSON, or CSV for a client that asks for it in `Accept` (as before the
/// `.csv` resources existed).
pub async fn errors(app: App, read: OutcomeRead) -> Result<Answer, ApiError> {
    let csv = wants_csv(&read.headers);
    outcomes(app, read, Outcomes::Errors, csv).await
}

pub async fn result(app: App, read: OutcomeRead) -> Result<Answer, ApiError> {
    let csv = wants_csv(&read.headers);
    outcomes(app, read, Outcomes::Result, csv).await
}

/// `GET …/errors.csv`: always the CSV error report, one media type for one operation, so a
/// client generated from the contract gets a file here and a model at `…/errors`.
pub async fn errors_csv(app: App, read: OutcomeRead) -> Result<Answer, ApiError> {
    outcomes(app, read, Outcomes::Errors, true).await
}

pub async fn result_csv(app: App, read: OutcomeRead) -> Result<Answer, ApiError> {
    outcomes(app, read, Outcomes::Result, true).await
}

/// What a read of outcomes takes from its request.
pub struct OutcomeRead {
    owner: Owner,
    task: TaskPath,
    params: Params,
    headers: HeaderMap,
    uri: Uri,
}

impl<S: Send + Sync> FromRequestParts<S> for OutcomeRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Caller(owner) = Caller::from_request_parts(parts, state).await?;
        let task = TaskPath::from_request_parts(parts, state).await?;
        let Ok(params) = Params::from_request_parts(parts, state).await;
        Ok(Self {
            owner,
            task,
            params,
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
        })
    }
}

async fn outcomes(
    State(app): App,
    read: OutcomeRead,
    what: Outcomes,
    csv: bool,
) -> Result<Answer, ApiError> {
    let OutcomeRead {
        owner,
        task,
        params,
        uri,
        ..
    } = read;
    let query = read_task::OutcomeQuery {
        owner: &owner,
        task_type: task.task_type,
        id: task.id,
        page_token: params.first("page_token"),
        limit: read_task::parse_limit(params.first("limit"), read_task::ITEM_PAGE)?,
    };
    let (store, tokens, now) = (app.store.as_ref(), &app.tokens, OffsetDateTime::now_utc());
    if !csv {
        return Ok(match what {
            Outcomes::Errors => {
                Answer::ok(&read_task::errors_page(store, tokens, &query, now).await?)
            }
            Outcomes::Result => {
                Answer::ok(&read_task::result_page(store, tokens, &query, now).await?)
            }
        });
    }
    let filter = match what {
        Outcomes::Errors => OutcomeFilter::FailedOnly,
        Outcomes::Result => OutcomeFilter::All,
    };
    let (outcomes, next) = read_task::outcomes_page(store, tokens, &query, filter, now).await?;
    let body = match what {
        Outcomes::Errors => csv_output::errors(&outcomes),
        Outcomes::Result => csv_output::result(task.task_type, &outcomes),
    };
    let answer = Answer::csv(body);
    Ok(match next {
        // Each page is a whole CSV file; the next one is a link away (RFC 8288).
        Some(token) => answer.header(
            "link",
            format!(
                "<{}?limit={}&page_token={token}>; rel=\"next\"",
                uri.path(),
                query.limit
            ),
        ),
        None => answer,
    })
}
