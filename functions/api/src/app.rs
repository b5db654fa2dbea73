//! The function's one entry: [`App`] holds the ports built at cold start and the route table,
//! and [`App::handle`] answers one API Gateway request inside its log span and trace.

use crate::routes;
use axum::Router;
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::paging::PageTokens;
use tasks_core::ports::{
    BeneficiaryBackend, DeliveryQueue, DeliveryStore, FileStore, IdempotencyStore, IngestQueue,
    LaneStore, TaskStore, TicketStore, WebhookStore, WorkQueue,
};
use tasks_core::trace::{self, Trace};
use tasks_core::usecases::schedule::Scheduler;
use tower::ServiceExt;
use tracing::Instrument;

/// What the handlers share, built once per cold start.
pub(crate) struct Services {
    pub store: Arc<dyn TaskStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    /// Live tickets (`POST /live-tickets`).
    pub tickets: Arc<dyn TicketStore>,
    /// Where a manual retry sends a delivery (the sender's queue).
    pub delivery_queue: Arc<dyn DeliveryQueue>,
    /// Where submitted chunks wait for the caller's lanes (`usecases::schedule`).
    pub lanes: Arc<dyn LaneStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub backend: Arc<dyn BeneficiaryBackend>,
    pub files: Arc<dyn FileStore>,
    pub ingest: Arc<dyn IngestQueue>,
    pub settings: Settings,
    pub tokens: PageTokens,
}

impl Services {
    /// The lanes and the queue, as the use cases that enqueue a task take them.
    pub fn scheduler(&self) -> Scheduler<'_> {
        Scheduler {
            lanes: self.lanes.as_ref(),
            queue: self.queue.as_ref(),
        }
    }
}

/// The api function: its ports and its routes.
pub struct App {
    router: Router,
}

/// The ports the api needs besides its store.
pub struct Ports {
    /// Where submitted chunks wait for the caller's lanes (`usecases::schedule`).
    pub lanes: Arc<dyn LaneStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub backend: Arc<dyn BeneficiaryBackend>,
    /// Where a manual retry sends a delivery (the sender's queue).
    pub delivery_queue: Arc<dyn DeliveryQueue>,
    /// Where uploaded files go (pre-signed PUTs) and are checked when an upload closes.
    pub files: Arc<dyn FileStore>,
    /// Where a closed upload's ingest run is sent.
    pub ingest: Arc<dyn IngestQueue>,
    /// What the console's page is told about where it runs.
    pub console: crate::console::ConsoleSettings,
}

impl App {
    /// `store` keeps tasks, idempotency records, webhook endpoints and live tickets (one
    /// DynamoDB table in AWS).
    pub fn new<
        S: TaskStore + IdempotencyStore + WebhookStore + DeliveryStore + TicketStore + 'static,
    >(
        store: Arc<S>,
        ports: Ports,
        settings: Settings,
        tokens: PageTokens,
    ) -> Self {
        let console = ports.console;
        let services = Services {
            store: store.clone(),
            idempotency: store.clone(),
            webhooks: store.clone(),
            deliveries: store.clone(),
            tickets: store,
            delivery_queue: ports.delivery_queue,
            lanes: ports.lanes,
            queue: ports.queue,
            backend: ports.backend,
            files: ports.files,
            ingest: ports.ingest,
            settings,
            tokens,
        };
        Self {
            router: routes::table(Arc::new(services), console),
        }
    }

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
        let router = self.router.clone();
        let work = async move {
            let response = match router.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            tracing::info!(status = response.status().as_u16(), "request answered");
            into_lambda(response).await
        };
        trace::within(trace, work.instrument(span)).await
    }
}

/// The router's answer as the Lambda response API Gateway takes. Our answers are whole
/// strings already (JSON or CSV), so reading the body back cannot fail or wait.
async fn into_lambda(response: axum::response::Response) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        },
        Err(_) => Body::Empty,
    };
    Response::from_parts(parts, body)
}
