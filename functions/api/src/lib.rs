//! The api function: routes API Gateway requests to the core's use cases and turns their
//! results into HTTP answers. Identity is read only from the authorizer's claims in the
//! request context; nothing a client can put in a header or body decides who they are.
//!
//! A request goes, in order, through [`app`] (its log span and trace), [`routes`] (the route
//! table) with the layers every route shares ([`auth`], [`paths`], [`idempotency`]), and one
//! handler in [`resources`], which reads the request through [`extract`] and answers with an
//! [`answer::Answer`] or an [`error::ApiError`]. [`console`] serves the web console beside
//! them, without credentials.

mod answer;
mod app;
mod auth;
pub mod console;
pub mod error;
mod extract;
mod idempotency;
mod paths;
mod resources;
mod routes;

pub use app::{App, Ports};
