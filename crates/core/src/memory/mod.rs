//! In-memory implementations of the ports, for unit tests and in-process benchmarks. Never
//! used by a deployed function or by the integration tests, which run against DynamoDB Local,
//! moto's SQS and the BOS simulator. One module per port; [`MemoryStore`] plays every store the
//! DynamoDB table plays (tasks, idempotency, webhooks, connections), so its state lives here.

mod backend;
mod files;
mod idempotency;
mod lanes;
mod live;
mod queue;
mod tasks;
mod webhooks;

pub use backend::MemoryBackend;
pub use files::{MemoryFiles, MemoryIngestQueue};
pub use lanes::MemoryLanes;
pub use live::MemoryPusher;
pub use queue::MemoryQueue;
pub use webhooks::{MemoryDeliveryQueue, MemoryPoster, Received};

use crate::identity::Owner;
use crate::live_progress::ConnectionId;
use crate::outcome::ItemOutcome;
use crate::ports::*;
use crate::task::Task;
use crate::task::TaskId;
use crate::webhook::EndpointId;
use crate::webhook::WebhookEndpoint;
use crate::webhook_delivery::Delivery;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use time::OffsetDateTime;

/// Locks a mutex, taking over a poisoned one: a panicking test thread must not hide the state
/// from the assertions that follow. A std Mutex is enough: no lock is held across an `.await`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A std Mutex is enough: no lock is held across an `.await`.
#[derive(Default)]
pub struct MemoryStore {
    pub(super) tasks: Mutex<HashMap<TaskId, Task>>,
    pub(super) outcomes: Mutex<BTreeMap<(TaskId, u32), ItemOutcome>>,
    pub(super) idempotency: Mutex<HashMap<String, IdempotencyEntry>>,
    pub(super) webhooks: Mutex<HashMap<EndpointId, WebhookEndpoint>>,
    pub(super) deliveries: Mutex<HashMap<String, Delivery>>,
    /// Live progress connections: owner and watched tasks.
    pub(super) connections: Mutex<BTreeMap<ConnectionId, (Owner, BTreeSet<TaskId>)>>,
    /// Live tickets: owner and expiry.
    pub(super) tickets: Mutex<BTreeMap<crate::live_ticket::TicketKey, (Owner, OffsetDateTime)>>,
    pub(super) writes: AtomicUsize,
    pub(super) breaker: Mutex<crate::breaker::BreakerRecord>,
}

#[async_trait::async_trait]
impl BreakerStore for MemoryStore {
    async fn read_breaker(&self) -> Result<crate::breaker::BreakerRecord, StoreError> {
        Ok(lock(&self.breaker).clone())
    }

    async fn write_breaker(
        &self,
        seen: u64,
        next: &crate::breaker::BreakerRecord,
    ) -> Result<bool, StoreError> {
        let mut stored = lock(&self.breaker);
        if stored.version != seen {
            return Ok(false);
        }
        *stored = next.clone();
        Ok(true)
    }
}

pub(super) struct IdempotencyEntry {
    pub(super) fingerprint: String,
    pub(super) locked_at: OffsetDateTime,
    pub(super) expires_at: OffsetDateTime,
    pub(super) response: Option<StoredResponse>,
}

impl MemoryStore {
    /// Write requests the DynamoDB store would have made (one per call: a chunk's outcomes are
    /// one transaction).
    pub fn write_requests(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    pub fn get(&self, id: TaskId) -> Option<Task> {
        lock(&self.tasks).get(&id).cloned()
    }
    pub fn put(&self, task: Task) {
        lock(&self.tasks).insert(task.id, task);
    }
    pub fn task_count(&self) -> usize {
        lock(&self.tasks).len()
    }
}
