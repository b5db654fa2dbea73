//! One module per resource, each with its handlers: they parse what the path, query and body
//! carry, call one use case, and turn its result into an [`crate::answer::Answer`].

pub mod beneficiaries;
pub mod live_tickets;
pub mod task_items;
pub mod tasks;
pub mod uploads;
pub mod webhook_endpoints;

use crate::app::Services;
use axum::extract::State;
use std::sync::Arc;

/// What every handler takes first: the services built at cold start.
pub type App = State<Arc<Services>>;
