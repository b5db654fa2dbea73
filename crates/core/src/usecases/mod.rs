//! The use cases, one module each. Functions here take ports, never AWS clients, so the same
//! code runs in Lambda, behind the local gateway and in unit tests with in-memory adapters.

pub mod cancel_task;
pub mod consume;
pub mod create_beneficiary;
pub mod dead_letter;
pub mod deliver;
pub mod deliveries;
pub mod export;
pub mod hand_off_turn;
pub mod idempotency;
pub mod ingest;
pub mod live_progress;
pub mod live_tickets;
pub mod notify;
pub mod process_chunk;
pub mod read_task;
pub mod record_outcomes;
pub mod retry_task;
pub mod schedule;
pub mod submit_task;
pub mod upload_task;
pub mod upstream_wait;
pub mod webhook_endpoints;
