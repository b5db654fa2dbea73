//! Routing and request/response plumbing. Handlers stay thin: parse the path and query, call
//! a use case, serialise its answer. POSTs carrying an `Idempotency-Key` go through the
//! idempotency record first, and their answer is kept for replays.

use crate::error::ApiError;
use crate::route::{EndpointRoute, Route, TaskRoute};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasks_core::config::Settings;
use tasks_core::csv_output;
use tasks_core::error::{AppError, Chain};
use tasks_core::identity::Owner;
use tasks_core::paging::PageTokens;
use tasks_core::ports::{
    BeneficiaryBackend, DeliveryQueue, DeliveryStore, IdempotencyStore, LaneStore, OutcomeFilter,
    StoredResponse, TaskStore, WebhookStore, WorkQueue,
};
use tasks_core::task::TaskId;
use tasks_core::trace::{self, Trace};
use tasks_core::usecases::idempotency::{self, IdempotencyKey};
use tasks_core::usecases::retry_task;
use tasks_core::usecases::schedule::Scheduler;
use tasks_core::usecases::submit_task::Batch;
use tasks_core::usecases::{
    cancel_task, create_beneficiary, deliveries, read_task, submit_task, webhook_endpoints,
};
use time::OffsetDateTime;
use tracing::Instrument;

/// Seconds a client is asked to wait before polling a new task.
const RETRY_AFTER_SECS: u32 = 2;
/// Time given to one synchronous create, below API Gateway's 29 s integration limit.
const SYNC_CREATE_BUDGET: Duration = Duration::from_secs(20);

/// Everything a request needs, built once per cold start.
pub struct App {
    store: Arc<dyn TaskStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    webhooks: Arc<dyn WebhookStore>,
    deliveries: Arc<dyn DeliveryStore>,
    /// Where a manual retry sends a delivery (the sender's queue).
    delivery_queue: Arc<dyn DeliveryQueue>,
    /// Where submitted chunks wait for the caller's lanes (`usecases::schedule`).
    lanes: Arc<dyn LaneStore>,
    queue: Arc<dyn WorkQueue>,
    backend: Arc<dyn BeneficiaryBackend>,
    settings: Settings,
    tokens: PageTokens,
}

impl App {
    /// `store` keeps tasks, idempotency records and webhook endpoints (one DynamoDB table in
    /// AWS).
    pub fn new<S: TaskStore + IdempotencyStore + WebhookStore + DeliveryStore + 'static>(
        store: Arc<S>,
        lanes: Arc<dyn LaneStore>,
        queue: Arc<dyn WorkQueue>,
        backend: Arc<dyn BeneficiaryBackend>,
        delivery_queue: Arc<dyn DeliveryQueue>,
        settings: Settings,
        tokens: PageTokens,
    ) -> Self {
        Self {
            store: store.clone(),
            idempotency: store.clone(),
            webhooks: store.clone(),
            deliveries: store,
            delivery_queue,
            lanes,
            queue,
            backend,
            settings,
            tokens,
        }
    }
}

/// The caller, from the JWT authorizer's `sub` claim in the request context.
fn owner(req: &Request) -> Result<Owner, ApiError> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"))
            .and_then(|sub| Owner::from_subject(sub))
            .ok_or(ApiError::Unauthenticated),
        _ => Err(ApiError::Unauthenticated),
    }
}

/// The request's media type, lower case and without parameters (`text/csv; charset=utf-8`
/// is `text/csv`).
fn media_type(req: &Request) -> Option<String> {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Whether the client asked for CSV: `text/csv` named in `Accept` before `application/json`
/// (a bare `*/*`, or no header, is JSON).
fn wants_csv(req: &Request) -> bool {
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .find(|m| m == "text/csv" || m == "application/json")
        .is_some_and(|m| m == "text/csv")
}

fn require_json(req: &Request) -> Result<(), ApiError> {
    media_type(req)
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
        .then_some(())
        .ok_or(ApiError::UnsupportedMediaType)
}

/// An answer before it becomes a Lambda response; also what idempotency records keep.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(status: http::StatusCode, body: &impl Serialize) -> Self {
        Self {
            status: status.as_u16(),
            headers: vec![],
            body: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    /// `202` with a task just created (submitted or a retry), where to poll it, and when.
    fn accepted(task: &tasks_core::task::Task) -> Self {
        let view = task.view();
        Self::json(http::StatusCode::ACCEPTED, &view)
            .header("location", &view.links.self_)
            .header("retry-after", RETRY_AFTER_SECS)
    }

    fn csv(body: String) -> Self {
        Self {
            status: http::StatusCode::OK.as_u16(),
            headers: vec![("content-type".into(), "text/csv; charset=utf-8".into())],
            body,
        }
    }

    fn header(mut self, name: &str, value: impl ToString) -> Self {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    fn error(error: &ApiError) -> Self {
        let code = error.status();
        if code.is_server_error() {
            // The cause chain goes to the log only; the client gets the code and a sentence.
            tracing::error!(code = error.code(), cause = %Chain(error), "request failed");
        } else {
            tracing::info!(
                code = error.code(),
                status = code.as_u16(),
                "request refused"
            );
        }
        Self::json(code, &error.body())
    }

    fn into_response(self) -> Response<Body> {
        let mut res = Response::new(Body::Text(self.body));
        *res.status_mut() = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::OK);
        let headers = res.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::try_from(name),
                http::HeaderValue::try_from(value),
            ) {
                headers.insert(n, v);
            }
        }
        res
    }

    fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }

    fn replayed(r: StoredResponse) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
        .header("idempotent-replayed", "true")
    }
}

impl App {
    /// Answers one API Gateway request. Never fails: every error is an HTTP answer.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let context = req.lambda_context_ref();
        let request_id = context.map(|c| c.request_id.clone()).unwrap_or_default();
        // Lambda's trace for this request: the task it creates keeps it, its chunks carry it
        // through SQS, and every BOS call made for it (here or in a consumer) is a span of it.
        let trace = context
            .and_then(|c| c.xray_trace_id.as_deref())
            .and_then(Trace::from_xray_header);
        let span = tracing::info_span!("request", request_id = %request_id,
            trace_id = trace.as_ref().map(|t| tracing::field::display(t.trace_id())),
            method = %req.method(), owner = tracing::field::Empty, task_id = tracing::field::Empty);
        let work = async move {
            let answer = match self.authenticated(&req).await {
                Ok(a) => a,
                Err(e) => Answer::error(&e),
            };
            tracing::info!(status = answer.status, "request answered");
            answer.into_response()
        };
        trace::within(trace, work.instrument(span)).await
    }

    async fn authenticated(&self, req: &Request) -> Result<Answer, ApiError> {
        let owner = owner(req)?;
        tracing::Span::current().record("owner", owner.log_id());
        let path = req.uri().path().to_owned();
        let route = Route::parse(req.method(), &path)?;
        if let Some(id) = route.task_id() {
            tracing::Span::current().record("task_id", tracing::field::display(id));
        }
        let key = match req.headers().get("idempotency-key") {
            Some(raw) if req.method() == http::Method::POST => Some(IdempotencyKey::parse(
                raw.to_str().map_err(|_| AppError::InvalidIdempotencyKey)?,
            )?),
            _ => None,
        };
        let Some(key) = key else {
            return Ok(self
                .dispatch(req, &owner, route, None)
                .await
                .unwrap_or_else(|e| Answer::error(&e)));
        };
        let scope = key.scope(&owner);
        // The query is part of what was asked (`…/retry?include=all_failed`).
        let target = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        let fingerprint =
            idempotency::fingerprint(req.method().as_str(), &target, req.body().as_ref());
        let now = OffsetDateTime::now_utc();
        let ttl = self.settings.idempotency_ttl;
        if let Some(previous) =
            idempotency::begin(self.idempotency.as_ref(), &scope, &fingerprint, now, ttl).await?
        {
            return Ok(Answer::replayed(previous));
        }
        let answer = self
            .dispatch(req, &owner, route, Some(&scope))
            .await
            .unwrap_or_else(|e| Answer::error(&e));
        idempotency::finish(self.idempotency.as_ref(), &scope, &answer.stored()).await;
        Ok(answer)
    }

    async fn dispatch(
        &self,
        req: &Request,
        owner: &Owner,
        route: Route,
        idempotency_scope: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let now = OffsetDateTime::now_utc();
        let store = self.store.as_ref();
        let params = req.query_string_parameters();
        match route {
            Route::CreateBeneficiary => {
                require_json(req)?;
                let b = create_beneficiary::parse_body(
                    req.body().as_ref(),
                    self.settings.max_body_bytes,
                )?;
                // With a client key, a retried request reaches BOS with the same key and
                // cannot create twice; without one, each request is a new creation.
                let bos_key = match idempotency_scope {
                    Some(scope) => format!("sync:{scope}"),
                    None => format!("sync:{}", TaskId::new_random()),
                };
                let deadline = Instant::now() + SYNC_CREATE_BUDGET;
                let created =
                    create_beneficiary::create_one(self.backend.as_ref(), &b, &bos_key, deadline)
                        .await?;
                Ok(Answer::json(http::StatusCode::CREATED, &created))
            }
            Route::SubmitTask(task_type) => {
                let batch = match media_type(req).as_deref() {
                    Some("text/csv") => Batch::Csv(req.body().as_ref()),
                    _ => {
                        require_json(req)?;
                        Batch::Json(req.body().as_ref())
                    }
                };
                let scheduler = Scheduler {
                    lanes: self.lanes.as_ref(),
                    queue: self.queue.as_ref(),
                };
                let task = submit_task::submit(
                    store,
                    scheduler,
                    &self.settings,
                    owner.clone(),
                    task_type,
                    batch,
                    now,
                )
                .await?;
                tracing::Span::current().record("task_id", tracing::field::display(task.id));
                Ok(Answer::accepted(&task))
            }
            Route::ListTasks(task_type) => {
                let query = read_task::TaskListQuery {
                    owner,
                    task_type,
                    status: params.first("status"),
                    page_token: params.first("page_token"),
                    limit: read_task::parse_limit(params.first("limit"), read_task::TASK_PAGE)?,
                };
                let page = read_task::list_tasks(store, &self.tokens, &query, now).await?;
                Ok(Answer::json(http::StatusCode::OK, &page))
            }
            Route::Task(task_type, id, TaskRoute::Get) => {
                let task = read_task::get_task(store, owner, task_type, id, now).await?;
                Ok(Answer::json(http::StatusCode::OK, &task.view()))
            }
            Route::Task(task_type, id, TaskRoute::Retry) => {
                let request = retry_task::RetryRequest {
                    owner,
                    task_type,
                    id,
                    scope: retry_task::RetryScope::parse(params.first("include"))?,
                };
                let scheduler = Scheduler {
                    lanes: self.lanes.as_ref(),
                    queue: self.queue.as_ref(),
                };
                let task =
                    retry_task::retry(store, scheduler, &self.settings, &request, now).await?;
                Ok(Answer::accepted(&task))
            }
            Route::Task(task_type, id, TaskRoute::Cancel) => {
                let task = cancel_task::cancel_task(store, owner, task_type, id, now).await?;
                Ok(Answer::json(http::StatusCode::ACCEPTED, &task.view()))
            }
            Route::Task(task_type, id, what @ (TaskRoute::Errors | TaskRoute::Result)) => {
                let query = read_task::OutcomeQuery {
                    owner,
                    task_type,
                    id,
                    page_token: params.first("page_token"),
                    limit: read_task::parse_limit(params.first("limit"), read_task::ITEM_PAGE)?,
                };
                if wants_csv(req) {
                    let errors = what == TaskRoute::Errors;
                    let filter = if errors {
                        OutcomeFilter::FailedOnly
                    } else {
                        OutcomeFilter::All
                    };
                    let (outcomes, next) =
                        read_task::outcomes_page(store, &self.tokens, &query, filter, now).await?;
                    let body = if errors {
                        csv_output::errors(&outcomes)
                    } else {
                        csv_output::result(task_type, &outcomes)
                    };
                    let mut answer = Answer::csv(body);
                    if let Some(token) = next {
                        // Each page is a whole CSV file; the next one is a link away (RFC 8288).
                        let link = format!(
                            "<{}?limit={}&page_token={token}>; rel=\"next\"",
                            req.uri().path(),
                            query.limit
                        );
                        answer = answer.header("link", link);
                    }
                    return Ok(answer);
                }
                if what == TaskRoute::Errors {
                    let page = read_task::errors_page(store, &self.tokens, &query, now).await?;
                    Ok(Answer::json(http::StatusCode::OK, &page))
                } else {
                    let page = read_task::result_page(store, &self.tokens, &query, now).await?;
                    Ok(Answer::json(http::StatusCode::OK, &page))
                }
            }
            Route::CreateEndpoint => {
                require_json(req)?;
                let policy = self.settings.webhook_targets;
                let hooks = self.webhooks.as_ref();
                let created =
                    webhook_endpoints::create(hooks, policy, owner, req.body().as_ref(), now)
                        .await?;
                let location = format!("/webhook-endpoints/{}", created.id);
                Ok(
                    Answer::json(http::StatusCode::CREATED, &created.view_with_secret())
                        .header("location", location),
                )
            }
            Route::ListEndpoints => {
                let limit = params.first("limit");
                let limit = read_task::parse_limit(limit, webhook_endpoints::ENDPOINT_PAGE)?;
                let token = params.first("page_token");
                let hooks = self.webhooks.as_ref();
                let page =
                    webhook_endpoints::list(hooks, &self.tokens, owner, token, limit).await?;
                Ok(Answer::json(http::StatusCode::OK, &page))
            }
            Route::Endpoint(id, what) => {
                let hooks = self.webhooks.as_ref();
                match what {
                    EndpointRoute::Get => {
                        let endpoint = webhook_endpoints::get(hooks, owner, id).await?;
                        Ok(Answer::json(http::StatusCode::OK, &endpoint.view()))
                    }
                    EndpointRoute::Delete => {
                        let deleted = webhook_endpoints::delete(hooks, owner, id).await?;
                        Ok(Answer::json(http::StatusCode::OK, &deleted))
                    }
                    EndpointRoute::RotateSecret => {
                        let rotated =
                            webhook_endpoints::rotate_secret(hooks, owner, id, now).await?;
                        Ok(Answer::json(
                            http::StatusCode::OK,
                            &rotated.view_with_secret(),
                        ))
                    }
                    EndpointRoute::Deliveries => {
                        let limit = params.first("limit");
                        let query = deliveries::LogQuery {
                            owner,
                            endpoint: id,
                            page_token: params.first("page_token"),
                            limit: read_task::parse_limit(limit, deliveries::DELIVERY_PAGE)?,
                        };
                        let log = self.deliveries.as_ref();
                        let page = deliveries::log(hooks, log, &self.tokens, &query).await?;
                        Ok(Answer::json(http::StatusCode::OK, &page))
                    }
                }
            }
            Route::RetryDelivery(endpoint, delivery) => {
                let (hooks, log) = (self.webhooks.as_ref(), self.deliveries.as_ref());
                let queue = self.delivery_queue.as_ref();
                let retried =
                    deliveries::retry(hooks, log, queue, owner, endpoint, &delivery).await?;
                Ok(Answer::json(http::StatusCode::ACCEPTED, &retried))
            }
        }
    }
}
