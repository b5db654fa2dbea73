//! Shared set-up for the core's unit tests: a beneficiary from an IBAN, and a task stored in
//! a memory store together with its chunk messages, and one delivery of a chunk.

use crate::beneficiary::Beneficiary;
use crate::breaker::Breaker;
use crate::chunk::{split, ChunkMessage};
use crate::config::Settings;
use crate::identity::Owner;
use crate::memory::MemoryStore;
use crate::ports::{BeneficiaryBackend, TaskStore};
use crate::task::{Task, TaskType};
use crate::usecases::process_chunk::{process_chunk, Attempts, ChunkError, ChunkReport, ChunkRun};
use crate::usecases::upstream_wait::Upstream;
use serde_json::json;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

pub fn beneficiary(iban: &str) -> Beneficiary {
    Beneficiary::parse(&json!({"name": "N", "country": "DE", "currency": "EUR", "iban": iban}))
        .expect("a valid test beneficiary")
}

/// `n` valid beneficiaries (the same one: the tests using them never reach BOS).
pub fn beneficiaries(n: usize) -> Vec<Beneficiary> {
    vec![beneficiary("DE89370400440532013000"); n]
}

/// A task of alice's holding one item per IBAN, stored, and split into chunks of `chunk_size`.
pub async fn stored_task(
    store: &MemoryStore,
    task_type: TaskType,
    ibans: &[&str],
    chunk_size: usize,
) -> (Task, Vec<ChunkMessage>) {
    let owner = Owner::from_subject("alice").expect("owner");
    let task = Task::new(
        task_type,
        owner,
        ibans.len() as u32,
        OffsetDateTime::now_utc(),
    );
    store.insert_task(&task).await.expect("insert");
    let items = ibans.iter().map(|i| beneficiary(i)).collect();
    let chunks = split(
        task.id,
        task.task_type,
        &task.owner.storage_key(),
        items,
        chunk_size,
    );
    (task, chunks)
}

/// A deadline far enough away not to matter.
pub fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// One normal delivery of `msg` with a BOS limit of its own (`settings.bos_concurrency`).
pub async fn process(
    store: &MemoryStore,
    backend: &dyn BeneficiaryBackend,
    settings: &Settings,
    msg: &ChunkMessage,
    deadline: Instant,
) -> Result<ChunkReport, ChunkError> {
    deliver(store, backend, settings, msg, deadline, Attempts::Retryable).await
}

/// One delivery of `msg`, normal or settling, in a consumer process of its own (a breaker
/// view nobody else shares).
pub async fn deliver(
    store: &MemoryStore,
    backend: &dyn BeneficiaryBackend,
    settings: &Settings,
    msg: &ChunkMessage,
    deadline: Instant,
    attempts: Attempts,
) -> Result<ChunkReport, ChunkError> {
    let breaker = Breaker::default();
    deliver_in(store, backend, settings, msg, deadline, attempts, &breaker).await
}

/// One delivery of `msg` in a consumer process whose view of the breaker is `breaker`.
pub async fn deliver_in(
    store: &MemoryStore,
    backend: &dyn BeneficiaryBackend,
    settings: &Settings,
    msg: &ChunkMessage,
    deadline: Instant,
    attempts: Attempts,
    breaker: &Breaker,
) -> Result<ChunkReport, ChunkError> {
    let bos_limit = Semaphore::new(settings.bos_concurrency);
    let run = ChunkRun {
        store,
        backend,
        settings,
        bos_limit: &bos_limit,
        deadline,
        upstream: Upstream { breaker, store },
    };
    process_chunk(&run, msg, attempts).await
}
