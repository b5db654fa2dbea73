//! The DynamoDB side of the stores, on one table (single-table design):
//! - `table`: the client and what every store call shares (error mapping, consistent and
//!   batch reads, batch writes, transactions, the paged query loop);
//! - `codec`: the key schema of tasks, item outcomes and idempotency records, and their codecs;
//! - `task_store` and `idempotency_store`: the two ports on that schema;
//! - `lanes`: the scheduler's lane store, with its own keys, on the same table;
//! - `webhook_store` and `delivery_store`: webhook endpoints and their deliveries, with their
//!   own keys, on the same table;
//! - `connection_store`: live progress connections and their subscriptions, likewise.
//!
//! Every attribute name in an expression goes through `#names`, since DynamoDB reserves many
//! common words (`status`).

mod breaker_store;
mod codec;
mod connection_store;
mod delivery_store;
mod idempotency_store;
pub mod lanes;
mod table;
mod task_store;
mod webhook_store;

pub use lanes::DynamoLanes;
pub use task_store::DynamoTaskStore;
