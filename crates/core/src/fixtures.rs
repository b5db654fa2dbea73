//! Shared set-up for the core's unit tests: a beneficiary from an IBAN, and a task stored in
//! a memory store together with its chunk messages.

use crate::beneficiary::Beneficiary;
use crate::chunk::{split, ChunkMessage};
use crate::identity::Owner;
use crate::memory::MemoryStore;
use crate::ports::TaskStore;
use crate::task::{Task, TaskType};
use serde_json::json;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

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
