//! A minimal Lambda Runtime API (the `2018-06-01` interface `lambda_runtime` polls), served
//! to one function process, as Lambda and `cargo lambda watch` do. The process asks for the
//! next event, works, and posts a response or an error; the local gateway turns those into
//! HTTP answers or SQS deletions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tasks_core::trace::Trace;
use tokio::sync::{mpsc, oneshot, Mutex};

/// What a function invocation ended with.
pub type Reply = Result<Vec<u8>, String>;

pub struct Invocation {
    pub id: String,
    pub payload: Vec<u8>,
    pub deadline_ms: u64,
    pub reply: oneshot::Sender<Reply>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    pub submit: mpsc::Sender<Invocation>,
    state: Arc<ApiState>,
}

struct ApiState {
    function_arn: String,
    next: Mutex<mpsc::Receiver<Invocation>>,
    in_flight: std::sync::Mutex<HashMap<String, oneshot::Sender<Reply>>>,
}

impl ApiState {
    /// The invocations awaiting an answer. A std Mutex, taken over when poisoned: no lock is
    /// held across an `.await`, and a panicked handler must not wedge the runtime API.
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RuntimeApi {
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let (submit, rx) = mpsc::channel(16);
        let state = Arc::new(ApiState {
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}"),
            next: Mutex::new(rx),
            in_flight: std::sync::Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "runtime API server stopped");
            }
        });
        Ok(Self {
            addr,
            submit,
            state,
        })
    }

    /// Fails every invocation the process had taken: it exited before answering.
    pub fn fail_in_flight(&self, why: &str) {
        let pending: Vec<_> = self.state.in_flight().drain().collect();
        for (_, reply) in pending {
            let _receiver_may_be_gone = reply.send(Err(why.to_owned()));
        }
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let mut rx = state.next.lock().await;
    loop {
        let Some(inv) = rx.recv().await else {
            return (StatusCode::GONE, HeaderMap::new(), Vec::new());
        };
        // The caller gave up (time-out) before this process picked it up: skip it.
        if inv.reply.is_closed() {
            continue;
        }
        let mut headers = HeaderMap::new();
        let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"));
        headers.insert("lambda-runtime-aws-request-id", hv(&inv.id));
        headers.insert(
            "lambda-runtime-deadline-ms",
            hv(&inv.deadline_ms.to_string()),
        );
        headers.insert(
            "lambda-runtime-invoked-function-arn",
            hv(&state.function_arn),
        );
        // Lambda starts a trace of its own for each invocation (an HTTP API passes none on,
        // and SQS-triggered invocations are linked to the sender's trace through the record's
        // `AWSTraceHeader`, not continued), and hands it over in this header.
        headers.insert(
            "lambda-runtime-trace-id",
            hv(&Trace::new_root().xray_header()),
        );
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        state.in_flight().insert(inv.id.clone(), inv.reply);
        return (StatusCode::OK, headers, inv.payload);
    }
}

fn finish(state: &ApiState, id: &str, reply: Reply) -> StatusCode {
    match state.in_flight().remove(id) {
        Some(tx) => {
            let _caller_may_have_timed_out = tx.send(reply);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&state, &id, Ok(body.to_vec()))
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(
        &state,
        &id,
        Err(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_error(body: Bytes) -> StatusCode {
    tracing::error!(error = %String::from_utf8_lossy(&body), "function failed to initialise");
    StatusCode::ACCEPTED
}
