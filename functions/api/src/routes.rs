//! Routing and request/response plumbing. Handlers stay thin: parse the path and query,
//! call a use case, serialise its answer.

use crate::http_errors::status;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasks_core::config::Settings;
use tasks_core::error::AppError;
use tasks_core::identity::Owner;
use tasks_core::paging::PageTokens;
use tasks_core::ports::{BeneficiaryBackend, TaskStore, WorkQueue};
use tasks_core::task::{TaskId, TaskType};
use tasks_core::usecases::{create_beneficiary, read_task, submit_task};
use time::OffsetDateTime;
use tracing::Instrument;

/// Seconds a client is asked to wait before polling a new task.
const RETRY_AFTER_SECS: u32 = 2;
/// Time given to one synchronous create, below API Gateway's 29 s integration limit.
const SYNC_CREATE_BUDGET: Duration = Duration::from_secs(20);

/// Everything a request needs, built once per cold start.
pub struct App {
    pub store: Arc<dyn TaskStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub backend: Arc<dyn BeneficiaryBackend>,
    pub settings: Settings,
    pub tokens: PageTokens,
}

enum Route<'a> {
    CreateBeneficiary,
    SubmitTask(&'a str),
    GetTask(&'a str, &'a str),
    TaskErrors(&'a str, &'a str),
    TaskResult(&'a str, &'a str),
}

fn route<'a>(method: &http::Method, path: &'a str) -> Result<Route<'a>, AppError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        ["beneficiaries"] => (Route::CreateBeneficiary, http::Method::POST),
        ["tasks", t] => (Route::SubmitTask(t), http::Method::POST),
        ["tasks", t, id] => (Route::GetTask(t, id), http::Method::GET),
        ["tasks", t, id, "errors"] => (Route::TaskErrors(t, id), http::Method::GET),
        ["tasks", t, id, "result"] => (Route::TaskResult(t, id), http::Method::GET),
        _ => return Err(AppError::RouteNotFound),
    };
    if method != allowed {
        return Err(AppError::MethodNotAllowed);
    }
    Ok(route)
}

/// The caller, from the JWT authorizer's `sub` claim in the request context.
fn owner(req: &Request) -> Result<Owner, AppError> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"))
            .and_then(|sub| Owner::from_subject(sub))
            .ok_or(AppError::Unauthenticated),
        _ => Err(AppError::Unauthenticated),
    }
}

fn task_type(slug: &str) -> Result<TaskType, AppError> {
    TaskType::from_slug(slug).ok_or(AppError::UnknownTaskType)
}

/// A malformed id cannot name a task, so it is answered like an unknown one.
fn task_id(raw: &str) -> Result<TaskId, AppError> {
    raw.parse().map_err(|_| AppError::TaskNotFound)
}

fn require_json(req: &Request) -> Result<(), AppError> {
    let ok = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
    ok.then_some(()).ok_or(AppError::UnsupportedMediaType)
}

fn json_response(status: http::StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut res = Response::new(Body::Text(text));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn error_response(error: &AppError) -> Response<Body> {
    let code = status(error);
    if code.is_server_error() {
        tracing::error!(code = error.code(), cause = %error, "request failed");
    } else {
        tracing::info!(
            code = error.code(),
            status = code.as_u16(),
            "request refused"
        );
    }
    json_response(code, &error.body())
}

impl App {
    /// Answers one API Gateway request. Never fails: every error is an HTTP answer.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let request_id = req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let span = tracing::info_span!("request", request_id = %request_id,
            method = %req.method(), owner = tracing::field::Empty, task_id = tracing::field::Empty);
        async move {
            match self.dispatch(&req).await {
                Ok(res) => {
                    tracing::info!(status = res.status().as_u16(), "request answered");
                    res
                }
                Err(e) => error_response(&e),
            }
        }
        .instrument(span)
        .await
    }

    async fn dispatch(&self, req: &Request) -> Result<Response<Body>, AppError> {
        let owner = owner(req)?;
        tracing::Span::current().record("owner", owner.log_id());
        let path = req.uri().path().to_owned();
        let now = OffsetDateTime::now_utc();
        match route(req.method(), &path)? {
            Route::CreateBeneficiary => {
                require_json(req)?;
                let b = create_beneficiary::parse_body(
                    req.body().as_ref(),
                    self.settings.max_body_bytes,
                )?;
                let key = format!("sync:{}", uuid_like());
                let created = create_beneficiary::create_one(
                    self.backend.as_ref(),
                    &b,
                    &key,
                    Instant::now() + SYNC_CREATE_BUDGET,
                )
                .await?;
                Ok(json_response(http::StatusCode::CREATED, &created))
            }
            Route::SubmitTask(t) => {
                let task_type = task_type(t)?;
                require_json(req)?;
                let task = submit_task::submit(
                    self.store.as_ref(),
                    self.queue.as_ref(),
                    &self.settings,
                    owner,
                    task_type,
                    req.body().as_ref(),
                    now,
                )
                .await?;
                tracing::Span::current().record("task_id", tracing::field::display(task.id));
                let view = task.view();
                let mut res = json_response(http::StatusCode::ACCEPTED, &view);
                let headers = res.headers_mut();
                if let Ok(v) = http::HeaderValue::from_str(&view.links.self_) {
                    headers.insert(http::header::LOCATION, v);
                }
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(RETRY_AFTER_SECS),
                );
                Ok(res)
            }
            Route::GetTask(t, id) => {
                let (task_type, id) = (task_type(t)?, task_id(id)?);
                tracing::Span::current().record("task_id", tracing::field::display(id));
                let task =
                    read_task::get_task(self.store.as_ref(), &owner, task_type, id, now).await?;
                Ok(json_response(http::StatusCode::OK, &task.view()))
            }
            Route::TaskErrors(t, id) | Route::TaskResult(t, id) => {
                let (task_type, id) = (task_type(t)?, task_id(id)?);
                tracing::Span::current().record("task_id", tracing::field::display(id));
                let params = req.query_string_parameters();
                let query = read_task::OutcomeQuery {
                    owner: &owner,
                    task_type,
                    id,
                    page_token: params.first("page_token"),
                    limit: read_task::parse_limit(params.first("limit"))?,
                };
                let store = self.store.as_ref();
                if path.ends_with("/errors") {
                    let page = read_task::errors_page(store, &self.tokens, &query, now).await?;
                    Ok(json_response(http::StatusCode::OK, &page))
                } else {
                    let page = read_task::result_page(store, &self.tokens, &query, now).await?;
                    Ok(json_response(http::StatusCode::OK, &page))
                }
            }
        }
    }
}

/// A random key for a synchronous create without a client Idempotency-Key.
fn uuid_like() -> String {
    tasks_core::task::TaskId::new_random().to_string()
}
