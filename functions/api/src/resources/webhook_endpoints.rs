//! `/webhook-endpoints`: the caller's endpoints (create, list, read, delete, rotate the
//! secret) and each one's delivery log, with a manual retry of one delivery.

use super::App;
use crate::answer::Answer;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{require_json, Params};
use crate::paths::{DeliveryPath, EndpointPath};
use axum::body::Bytes;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use tasks_core::usecases::{deliveries, read_task, webhook_endpoints};
use time::OffsetDateTime;

pub async fn create(
    State(app): App,
    Caller(owner): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    require_json(&headers)?;
    let (hooks, policy) = (app.webhooks.as_ref(), app.settings.webhook_targets);
    let now = OffsetDateTime::now_utc();
    let created = webhook_endpoints::create(hooks, policy, &owner, &body, now).await?;
    let location = format!("/webhook-endpoints/{}", created.id);
    Ok(Answer::json(StatusCode::CREATED, &created.view_with_secret()).header("location", location))
}

pub async fn list(
    State(app): App,
    Caller(owner): Caller,
    params: Params,
) -> Result<Answer, ApiError> {
    let limit = read_task::parse_limit(params.first("limit"), webhook_endpoints::ENDPOINT_PAGE)?;
    let token = params.first("page_token");
    let hooks = app.webhooks.as_ref();
    let page = webhook_endpoints::list(hooks, &app.tokens, &owner, token, limit).await?;
    Ok(Answer::ok(&page))
}

pub async fn get(
    State(app): App,
    Caller(owner): Caller,
    EndpointPath(id): EndpointPath,
) -> Result<Answer, ApiError> {
    let endpoint = webhook_endpoints::get(app.webhooks.as_ref(), &owner, id).await?;
    Ok(Answer::ok(&endpoint.view()))
}

pub async fn delete(
    State(app): App,
    Caller(owner): Caller,
    EndpointPath(id): EndpointPath,
) -> Result<Answer, ApiError> {
    let deleted = webhook_endpoints::delete(app.webhooks.as_ref(), &owner, id).await?;
    Ok(Answer::ok(&deleted))
}

pub async fn rotate_secret(
    State(app): App,
    Caller(owner): Caller,
    EndpointPath(id): EndpointPath,
) -> Result<Answer, ApiError> {
    let now = OffsetDateTime::now_utc();
    let hooks = app.webhooks.as_ref();
    let rotated = webhook_endpoints::rotate_secret(hooks, &owner, id, now).await?;
    Ok(Answer::ok(&rotated.view_with_secret()))
}

pub async fn deliveries(
    State(app): App,
    Caller(owner): Caller,
    EndpointPath(id): EndpointPath,
    params: Params,
) -> Result<Answer, ApiError> {
    let query = deliveries::LogQuery {
        owner: &owner,
        endpoint: id,
        page_token: params.first("page_token"),
        limit: read_task::parse_limit(params.first("limit"), deliveries::DELIVERY_PAGE)?,
    };
    let (hooks, log) = (app.webhooks.as_ref(), app.deliveries.as_ref());
    let page = deliveries::log(hooks, log, &app.tokens, &query).await?;
    Ok(Answer::ok(&page))
}

pub async fn retry_delivery(
    State(app): App,
    Caller(owner): Caller,
    path: DeliveryPath,
) -> Result<Answer, ApiError> {
    let (hooks, log) = (app.webhooks.as_ref(), app.deliveries.as_ref());
    let queue = app.delivery_queue.as_ref();
    let (endpoint, delivery) = (path.endpoint, &path.delivery);
    let retried = deliveries::retry(hooks, log, queue, &owner, endpoint, delivery).await?;
    Ok(Answer::json(StatusCode::ACCEPTED, &retried))
}
