//! Who is calling: the JWT authorizer's `sub` claim in the request context, read once by the
//! outermost layer, so every route (and every refusal after it) knows its caller. Nothing a
//! client sets in a header or body can name the caller.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tasks_core::identity::Owner;

/// The authenticated caller, for handlers to take as an argument.
#[derive(Clone)]
pub struct Caller(pub Owner);

/// Refuses a request without the authorizer's subject (401, before any route is looked up),
/// and hands the caller to the routes.
pub async fn authenticate(mut req: Request, next: Next) -> Response {
    let Some(owner) = subject(req.request_context_ref()) else {
        return ApiError::Unauthenticated.into_response();
    };
    tracing::Span::current().record("owner", owner.log_id());
    req.extensions_mut().insert(Caller(owner));
    next.run(req).await
}

fn subject(context: Option<&RequestContext>) -> Option<Owner> {
    match context? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")
            .and_then(|sub| Owner::from_subject(sub)),
        _ => None,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Always there behind `authenticate`; a route served without it refuses everyone.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }
}
