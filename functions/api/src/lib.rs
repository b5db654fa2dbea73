//! The api function: routes API Gateway requests to the core's use cases and turns their
//! results into HTTP answers. Identity is read only from the authorizer's claims in the
//! request context; nothing a client can put in a header or body decides who they are.

pub mod error;
mod route;
mod routes;

pub use routes::App;
