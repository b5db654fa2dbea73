//! [`Answer`]: what a handler answers before it becomes an HTTP response, and what an
//! idempotency record keeps for replays.

use crate::error::ApiError;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tasks_core::error::Chain;
use tasks_core::ports::StoredResponse;
use tasks_core::task::Task;

/// Seconds a client is asked to wait before polling a new task.
const RETRY_AFTER_SECS: u32 = 2;

pub struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    pub fn json(status: http::StatusCode, body: &impl Serialize) -> Self {
        Self {
            status: status.as_u16(),
            headers: vec![],
            body: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    pub fn ok(body: &impl Serialize) -> Self {
        Self::json(http::StatusCode::OK, body)
    }

    /// `202` with a task just created (submitted or a retry), where to poll it, and when.
    pub fn accepted(task: &Task) -> Self {
        let view = task.view();
        Self::json(http::StatusCode::ACCEPTED, &view)
            .header("location", &view.links.self_)
            .header("retry-after", RETRY_AFTER_SECS)
    }

    pub fn csv(body: String) -> Self {
        Self {
            status: http::StatusCode::OK.as_u16(),
            headers: vec![("content-type".into(), "text/csv; charset=utf-8".into())],
            body,
        }
    }

    pub fn header(mut self, name: &str, value: impl ToString) -> Self {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    /// The error's code and sentence for the client; its cause chain for the log only.
    pub fn error(error: &ApiError) -> Self {
        let code = error.status();
        if code.is_server_error() {
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

    pub fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }

    pub fn replayed(r: StoredResponse) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
        .header("idempotent-replayed", "true")
    }

    /// Reads back an answer from its response, for the idempotency record. Our bodies are
    /// whole strings in memory, so reading one cannot fail or wait.
    pub async fn from_response(response: Response) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| *name != http::header::CONTENT_LENGTH)
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        Self {
            status: parts.status.as_u16(),
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut res = Response::new(axum::body::Body::from(self.body));
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Answer::error(&self).into_response()
    }
}
