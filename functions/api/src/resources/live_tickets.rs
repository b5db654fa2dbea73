//! `POST /live-tickets`: a single-use, 30-second ticket that opens live progress from a browser
//! (`wss://…/live?ticket=…`), for the caller of this request (`tasks_core::live_ticket`).

use super::App;
use crate::answer::Answer;
use crate::auth::Caller;
use crate::error::ApiError;
use axum::extract::State;
use tasks_core::usecases::live_tickets as live_ticket;
use time::OffsetDateTime;

/// `201` with the ticket and when it expires. Never stored by caches or replayed: a ticket
/// is shown once.
pub async fn issue(State(app): App, Caller(owner): Caller) -> Result<Answer, ApiError> {
    let now = OffsetDateTime::now_utc();
    let issued = live_ticket::issue(app.tickets.as_ref(), &owner, now)
        .await
        .map_err(tasks_core::error::AppError::from)?;
    Ok(Answer::json(http::StatusCode::CREATED, &issued).header("cache-control", "no-store"))
}
