//! The routes the api function serves, parsed once from method and path into a typed
//! [`Route`]: the task type and the task id are checked here, so a handler holds only values
//! that exist. A malformed id cannot name a task, so it is answered like an unknown one.

use crate::error::ApiError;
use http::Method;
use tasks_core::error::AppError;
use tasks_core::task::{TaskId, TaskType};
use tasks_core::webhook::EndpointId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    CreateBeneficiary,
    SubmitTask(TaskType),
    ListTasks(TaskType),
    Task(TaskType, TaskId, TaskRoute),
    CreateEndpoint,
    ListEndpoints,
    Endpoint(EndpointId, EndpointRoute),
    /// `POST /webhook-endpoints/{id}/deliveries/{delivery_id}/retry`.
    RetryDelivery(EndpointId, String),
}

/// What is asked of one webhook endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointRoute {
    Get,
    Delete,
    RotateSecret,
    Deliveries,
}

/// What is asked of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRoute {
    Get,
    Cancel,
    Errors,
    Result,
    /// `POST …/retry`: a new task of the failed items.
    Retry,
}

impl Route {
    pub fn parse(method: &Method, path: &str) -> Result<Self, ApiError> {
        // The gateway refuses these too (tasks_core::paths): both layers must read a path alike.
        if !tasks_core::paths::is_canonical(path) {
            return Err(ApiError::RouteNotFound);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let task = |t: &str, id: &str, what| Ok(Route::Task(task_type(t)?, task_id(id)?, what));
        match (segments.as_slice(), method) {
            (["beneficiaries"], &Method::POST) => Ok(Route::CreateBeneficiary),
            (["tasks", t], &Method::POST) => Ok(Route::SubmitTask(task_type(t)?)),
            (["tasks", t], &Method::GET) => Ok(Route::ListTasks(task_type(t)?)),
            (["tasks", t, id], &Method::GET) => task(t, id, TaskRoute::Get),
            (["tasks", t, id], &Method::DELETE) => task(t, id, TaskRoute::Cancel),
            (["tasks", t, id, "errors"], &Method::GET) => task(t, id, TaskRoute::Errors),
            (["tasks", t, id, "result"], &Method::GET) => task(t, id, TaskRoute::Result),
            (["tasks", t, id, "retry"], &Method::POST) => task(t, id, TaskRoute::Retry),
            (["webhook-endpoints"], &Method::POST) => Ok(Route::CreateEndpoint),
            (["webhook-endpoints"], &Method::GET) => Ok(Route::ListEndpoints),
            (["webhook-endpoints", id], &Method::GET) => endpoint(id, EndpointRoute::Get),
            (["webhook-endpoints", id], &Method::DELETE) => endpoint(id, EndpointRoute::Delete),
            (["webhook-endpoints", id, "rotate-secret"], &Method::POST) => {
                endpoint(id, EndpointRoute::RotateSecret)
            }
            (["webhook-endpoints", id, "deliveries"], &Method::GET) => {
                endpoint(id, EndpointRoute::Deliveries)
            }
            (["webhook-endpoints", id, "deliveries", delivery, "retry"], &Method::POST) => {
                let id = id.parse().map_err(|_| AppError::WebhookEndpointNotFound)?;
                Ok(Route::RetryDelivery(id, (*delivery).to_owned()))
            }
            (
                ["beneficiaries"]
                | ["tasks", _]
                | ["tasks", _, _]
                | ["tasks", _, _, "errors" | "result" | "retry"]
                | ["webhook-endpoints"]
                | ["webhook-endpoints", _]
                | ["webhook-endpoints", _, "rotate-secret" | "deliveries"]
                | ["webhook-endpoints", _, "deliveries", _, "retry"],
                _,
            ) => Err(ApiError::MethodNotAllowed),
            _ => Err(ApiError::RouteNotFound),
        }
    }

    /// The task a route names, for the request's log span.
    pub fn task_id(&self) -> Option<TaskId> {
        match self {
            Route::Task(_, id, _) => Some(*id),
            _ => None,
        }
    }
}

fn task_type(slug: &str) -> Result<TaskType, AppError> {
    TaskType::from_slug(slug).ok_or(AppError::UnknownTaskType)
}

fn task_id(raw: &str) -> Result<TaskId, AppError> {
    raw.parse().map_err(|_| AppError::TaskNotFound)
}

fn endpoint(raw: &str, what: EndpointRoute) -> Result<Route, ApiError> {
    let id = raw.parse().map_err(|_| AppError::WebhookEndpointNotFound)?;
    Ok(Route::Endpoint(id, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7b0a3f3e-1f7a-4c39-9d9e-3c5a8f3b2a10";

    #[test]
    fn paths_parse_into_routes_or_the_right_refusal() {
        let import = TaskType::BeneficiariesImport;
        let id: TaskId = ID.parse().unwrap();
        let cases: Vec<(Method, String, Result<Route, &str>)> = vec![
            (
                Method::POST,
                "/beneficiaries".into(),
                Ok(Route::CreateBeneficiary),
            ),
            (
                Method::POST,
                "/tasks/beneficiaries-import".into(),
                Ok(Route::SubmitTask(import)),
            ),
            (
                Method::GET,
                "/tasks/beneficiaries-validation".into(),
                Ok(Route::ListTasks(TaskType::BeneficiariesValidation)),
            ),
            (
                Method::GET,
                format!("/tasks/beneficiaries-import/{ID}"),
                Ok(Route::Task(import, id, TaskRoute::Get)),
            ),
            (
                Method::DELETE,
                format!("/tasks/beneficiaries-import/{ID}"),
                Ok(Route::Task(import, id, TaskRoute::Cancel)),
            ),
            (
                Method::GET,
                format!("/tasks/beneficiaries-import/{ID}/errors"),
                Ok(Route::Task(import, id, TaskRoute::Errors)),
            ),
            (
                Method::GET,
                format!("/tasks/beneficiaries-import/{ID}/result"),
                Ok(Route::Task(import, id, TaskRoute::Result)),
            ),
            (
                Method::POST,
                format!("/tasks/beneficiaries-import/{ID}/retry"),
                Ok(Route::Task(import, id, TaskRoute::Retry)),
            ),
            (
                Method::GET,
                format!("/tasks/beneficiaries-import/{ID}/retry"),
                Err("method_not_allowed"),
            ),
            (Method::GET, "/tasks/nope".into(), Err("unknown_task_type")),
            (
                Method::GET,
                "/tasks/beneficiaries-import/42".into(),
                Err("task_not_found"),
            ),
            (Method::PUT, "/tasks/nope".into(), Err("method_not_allowed")),
            (
                Method::GET,
                "/beneficiaries".into(),
                Err("method_not_allowed"),
            ),
            (Method::GET, "/tasks".into(), Err("route_not_found")),
            (
                Method::POST,
                "/webhook-endpoints".into(),
                Ok(Route::CreateEndpoint),
            ),
            (
                Method::GET,
                "/webhook-endpoints".into(),
                Ok(Route::ListEndpoints),
            ),
            (
                Method::POST,
                format!("/webhook-endpoints/{ID}/rotate-secret"),
                Ok(Route::Endpoint(
                    ID.parse().unwrap(),
                    EndpointRoute::RotateSecret,
                )),
            ),
            (
                Method::GET,
                "/webhook-endpoints/x".into(),
                Err("webhook_endpoint_not_found"),
            ),
            (
                Method::PUT,
                format!("/webhook-endpoints/{ID}"),
                Err("method_not_allowed"),
            ),
            (
                Method::GET,
                "/tasks/../beneficiaries".into(),
                Err("route_not_found"),
            ),
            (
                Method::GET,
                format!("/tasks/beneficiaries-import/{ID}/other"),
                Err("route_not_found"),
            ),
        ];
        for (method, path, expected) in cases {
            let got = Route::parse(&method, &path).map_err(|e| e.code());
            assert_eq!(got, expected, "{method} {path}");
        }
    }
}
