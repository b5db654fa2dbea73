//! Core of the background tasks API: the domain (beneficiaries, tasks, chunks, the one error
//! shape), the use cases the Lambda functions run, and the ports (small traits) through which
//! those use cases reach storage, the work queue and the upstream back-office service.
//!
//! Nothing here knows about AWS types: the DynamoDB, SQS and BOS adapters live in their own
//! crates and implement [`ports`].
//!
//! The `test-support` feature adds what tests need and deployed functions must not carry: the
//! in-memory adapters (`memory`), the crash failpoint (`failpoint`) and an IBAN generator
//! (`test_ibans`). The workspace's test
//! and benchmark crates turn it on; a function built alone (`sam build`, `cargo lambda build
//! -p …`) does not have it, which `scripts/test` checks.

pub mod beneficiary;
pub mod breaker;
pub mod chunk;
pub mod config;
pub mod csv_input;
pub mod csv_output;
pub mod error;
pub mod error_body;
#[cfg(feature = "test-support")]
pub mod failpoint;
pub mod file_rows;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod iban_registry;
pub mod identity;
pub mod live_progress;
pub mod live_ticket;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod paging;
pub mod paths;
pub mod ports;
pub mod read_tally;
pub mod strict_json;
pub mod task;
pub mod task_types;
#[cfg(any(test, feature = "test-support"))]
pub mod test_ibans;
pub mod tolerance;
pub mod trace;
pub mod upload;
pub mod upstream;
pub mod usecases;
pub mod webhook;
pub mod webhook_delivery;
pub mod webhook_event;
pub mod webhook_url;
