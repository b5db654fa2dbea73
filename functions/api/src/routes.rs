//! The route table: every path and method the api serves, one line each, and the layers every
//! route shares. A new resource is one module in `resources` and its lines here.
//!
//! Layers, outermost first: the caller is authenticated (401 before anything else), the path
//! must be canonical, then a matched route's parameters are checked (404 for a type or id that
//! names nothing) before the `Idempotency-Key` claim. An unknown path is 404
//! `route_not_found`, a known path with another method 405 `method_not_allowed`. The console's
//! files (`crate::console`) sit beside the table, outside the credential check.

use crate::app::Services;
use crate::console::{self, ConsoleSettings};
use crate::error::ApiError;
use crate::resources::webhook_endpoints as hooks;
use crate::resources::{beneficiaries, live_tickets, task_items, tasks, uploads};
use crate::{auth, idempotency, paths};
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

// One line a route, so the table reads in one screen: rustfmt would fold the long ones.
#[rustfmt::skip]
pub fn table(app: Arc<Services>, console: ConsoleSettings) -> Router {
    let api = Router::new()
        .route("/beneficiaries", post(beneficiaries::create))
        .route("/tasks/{task_type}", post(tasks::submit).get(tasks::list))
        .route("/tasks/{task_type}/uploads", post(uploads::open))
        .route("/tasks/{task_type}/{task_id}", get(tasks::get).delete(task_items::cancel))
        .route("/tasks/{task_type}/{task_id}/upload-complete", post(uploads::complete))
        .route("/tasks/{task_type}/{task_id}/errors", get(task_items::errors))
        .route("/tasks/{task_type}/{task_id}/result", get(task_items::result))
        .route("/tasks/{task_type}/{task_id}/errors.csv", get(task_items::errors_csv))
        .route("/tasks/{task_type}/{task_id}/result.csv", get(task_items::result_csv))
        .route("/tasks/{task_type}/{task_id}/retry", post(task_items::retry))
        .route("/live-tickets", post(live_tickets::issue))
        .route("/webhook-endpoints", post(hooks::create).get(hooks::list))
        .route("/webhook-endpoints/{endpoint_id}", get(hooks::get).delete(hooks::delete))
        .route("/webhook-endpoints/{endpoint_id}/rotate-secret", post(hooks::rotate_secret))
        .route("/webhook-endpoints/{endpoint_id}/deliveries", get(hooks::deliveries))
        .route("/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry", post(hooks::retry_delivery))
        .route_layer(from_fn_with_state(app.clone(), idempotency::layer))
        .route_layer(from_fn(paths::check_params))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn(paths::refuse_non_canonical))
        .layer(from_fn(auth::authenticate))
        // Lambda hands over the whole body; the use cases apply the documented limits (413).
        .layer(DefaultBodyLimit::disable())
        .with_state(app);
    // The console's pages answer without credentials: the page has none until the person
    // signs in, and then calls the routes above like any client.
    console::router(console).merge(api)
}
