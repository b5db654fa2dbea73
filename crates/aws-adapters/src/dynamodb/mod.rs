//! The DynamoDB side of the stores, on one table (single-table design):
//! - `table`: the client and what every store call shares (error mapping, consistent and
//!   batch reads, batch writes, transactions, the paged query loop);
//! - `codec`: the key schema of tasks, item outcomes and idempotency records, and their codecs;
//! - `task_store` and `idempotency_store`: the two ports on that schema;
//! - `lanes`: the scheduler's lane store, with its own keys, on the same table;
//! - `webhook_store` and `delivery_store`: webhook endpoints and their deliveries, with their
//!   own keys, on the same table;
//! - `connection_store`: live progress connections and their subscriptions, likewise;
//! - `ticket_store`: live tickets, the single-use keys a browser opens live progress with.
//!
//! Every attribute name in an expression goes through `#names`, since DynamoDB reserves many
//! common words (`status`).

mod breaker_store;
mod codec;
mod connection_store;
mod deflated;
mod delivery_store;
mod idempotency_store;
pub mod lanes;
mod outcome_records;
mod table;
mod task_store;
mod ticket_store;
mod webhook_store;

pub use lanes::DynamoLanes;
pub use task_store::DynamoTaskStore;

/// A task as its table item, for tools that seed the table (the benchmarks).
pub fn task_record(
    task: &tasks_core::task::Task,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    codec::task_to_item(task)
}

/// Item outcomes as the table's records hold them (32 to a record), for tools that seed the
/// table (the benchmarks).
pub fn outcome_records(
    id: tasks_core::task::TaskId,
    outcomes: &[tasks_core::outcome::ItemOutcome],
    expires_at: time::OffsetDateTime,
) -> Result<
    Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
    tasks_core::ports::StoreError,
> {
    outcome_records::records(id, outcomes, expires_at)
}
