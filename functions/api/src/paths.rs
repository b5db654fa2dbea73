//! What a path names. The route table matches the path's shape; this module refuses paths that
//! layers could read differently, and turns the path's parameters into typed values, so a
//! handler holds only a task type, task id or endpoint id that can exist. A malformed id cannot
//! name anything, so it is answered like an unknown one.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use tasks_core::error::AppError;
use tasks_core::task::{TaskId, TaskType};
use tasks_core::webhook::EndpointId;

/// Refuses dot segments and encoded separators with a 404 before any route is matched: the
/// gateway refuses them too (`tasks_core::paths`), and both layers must read a path alike.
pub async fn refuse_non_canonical(req: Request, next: Next) -> Response {
    if !tasks_core::paths::is_canonical(req.uri().path()) {
        return ApiError::RouteNotFound.into_response();
    }
    next.run(req).await
}

/// Checks every parameter of a matched route, so that a path naming nothing is refused before
/// anything else about the request is read (its Idempotency-Key among them), and names the
/// task in the request's log span.
pub async fn check_params(params: RawPathParams, req: Request, next: Next) -> Response {
    for (name, value) in &params {
        let checked = match name {
            "task_type" => task_type(value).map(drop),
            "task_id" => task_id(value).map(|id| {
                tracing::Span::current().record("task_id", tracing::field::display(id));
            }),
            "endpoint_id" => endpoint_id(value).map(drop),
            _ => Ok(()),
        };
        if let Err(e) = checked {
            return ApiError::from(e).into_response();
        }
    }
    next.run(req).await
}

/// `/tasks/{task_type}`.
pub struct TaskTypePath(pub TaskType);

/// `/tasks/{task_type}/{task_id}`, and what hangs below it.
pub struct TaskPath {
    pub task_type: TaskType,
    pub id: TaskId,
}

/// `/webhook-endpoints/{endpoint_id}`, and what hangs below it.
pub struct EndpointPath(pub EndpointId);

/// `/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}`.
pub struct DeliveryPath {
    pub endpoint: EndpointId,
    pub delivery: String,
}

impl<S: Send + Sync> FromRequestParts<S> for TaskTypePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = raw(parts, state).await?;
        Ok(Self(task_type(param(&params, "task_type"))?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TaskPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = raw(parts, state).await?;
        Ok(Self {
            task_type: task_type(param(&params, "task_type"))?,
            id: task_id(param(&params, "task_id"))?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EndpointPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = raw(parts, state).await?;
        Ok(Self(endpoint_id(param(&params, "endpoint_id"))?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeliveryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = raw(parts, state).await?;
        Ok(Self {
            endpoint: endpoint_id(param(&params, "endpoint_id"))?,
            delivery: param(&params, "delivery_id").to_owned(),
        })
    }
}

/// The matched route's parameters; a path whose escapes do not decode matches no route.
async fn raw<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<RawPathParams, ApiError> {
    RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::RouteNotFound)
}

/// A parameter the route table declares; empty (and so refused by its parser) if a handler
/// were ever routed without it.
fn param<'a>(params: &'a RawPathParams, name: &str) -> &'a str {
    params
        .iter()
        .find_map(|(n, v)| (n == name).then_some(v))
        .unwrap_or("")
}

fn task_type(slug: &str) -> Result<TaskType, AppError> {
    TaskType::from_slug(slug).ok_or(AppError::UnknownTaskType)
}

fn task_id(raw: &str) -> Result<TaskId, AppError> {
    raw.parse().map_err(|_| AppError::TaskNotFound)
}

fn endpoint_id(raw: &str) -> Result<EndpointId, AppError> {
    raw.parse().map_err(|_| AppError::WebhookEndpointNotFound)
}
