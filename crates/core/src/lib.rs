//! Core of the background tasks API: the domain (beneficiaries, tasks, chunks, the one error
//! shape), the use cases the Lambda functions run, and the ports (small traits) through which
//! those use cases reach storage, the work queue and the upstream back-office service.
//!
//! Nothing here knows about AWS types: the DynamoDB, SQS and BOS adapters live in their own
//! crates and implement [`ports`]; [`memory`] implements them in memory for unit tests and
//! in-process benchmarks.

pub mod beneficiary;
pub mod chunk;
pub mod config;
pub mod error;
pub mod failpoint;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod iban_registry;
pub mod identity;
pub mod memory;
pub mod metrics;
pub mod paging;
pub mod paths;
pub mod ports;
pub mod strict_json;
pub mod task;
pub mod task_types;
pub mod usecases;
