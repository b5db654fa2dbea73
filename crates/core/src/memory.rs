//! In-memory implementations of the ports, for unit tests and in-process benchmarks. Never
//! used by a deployed function or by the integration tests, which run against DynamoDB Local,
//! moto's SQS and the BOS simulator. One file on purpose, past 400 lines: each adapter is a
//! plain stand-in with no logic of its own worth a module, and a test finds them all here.

use crate::beneficiary::{Beneficiary, CreatedBeneficiary};
use crate::chunk::{ChunkMessage, WorkMessage};
use crate::identity::Owner;
use crate::live_progress::{ConnectionId, MAX_SUBSCRIPTIONS};
use crate::outcome::{ItemOutcome, Tally};
use crate::ports::*;
use crate::task::{Task, TaskId, TaskStatus, TaskType};
use crate::upstream::{BackendError, Rejection, RejectionKind};
use crate::webhook::{EndpointId, WebhookEndpoint};
use crate::webhook_delivery::{Delivery, DeliveryMessage, DeliveryStatus};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use time::OffsetDateTime;

/// Locks a mutex, taking over a poisoned one: a panicking test thread must not hide the state
/// from the assertions that follow. A std Mutex is enough: no lock is held across an `.await`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A std Mutex is enough: no lock is held across an `.await`.
#[derive(Default)]
pub struct MemoryStore {
    tasks: Mutex<HashMap<TaskId, Task>>,
    outcomes: Mutex<BTreeMap<(TaskId, u32), ItemOutcome>>,
    idempotency: Mutex<HashMap<String, IdempotencyEntry>>,
    webhooks: Mutex<HashMap<EndpointId, WebhookEndpoint>>,
    deliveries: Mutex<HashMap<String, Delivery>>,
    /// Live progress connections: owner and watched tasks.
    connections: Mutex<BTreeMap<ConnectionId, (Owner, BTreeSet<TaskId>)>>,
    writes: AtomicUsize,
}

struct IdempotencyEntry {
    fingerprint: String,
    locked_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    response: Option<StoredResponse>,
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

#[async_trait]
impl TaskStore for MemoryStore {
    async fn insert_task(&self, task: &Task) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.put(task.clone());
        Ok(())
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        Ok(self.get(id))
    }

    async fn delete_task(&self, id: TaskId) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        lock(&self.tasks).remove(&id);
        Ok(())
    }

    async fn transition(
        &self,
        id: TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&id) else {
            return Ok(false);
        };
        if task.status != from || !from.can_become(to) {
            return Ok(false);
        }
        task.status = to;
        task.updated_at = now;
        if to == TaskStatus::Running {
            task.started_at.get_or_insert(now);
        }
        if to.is_final() {
            task.finished_at = Some(now);
            task.expires_at = expires_at;
        }
        Ok(true)
    }

    async fn final_items(&self, id: TaskId, indexes: &[u32]) -> Result<HashSet<u32>, StoreError> {
        let outcomes = lock(&self.outcomes);
        Ok(indexes
            .iter()
            .copied()
            .filter(|i| outcomes.contains_key(&(id, *i)))
            .collect())
    }

    async fn record_outcomes(
        &self,
        id: TaskId,
        new: &[ItemOutcome],
        now: OffsetDateTime,
        _expires_at: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let mut outcomes = lock(&self.outcomes);
        if new.iter().any(|o| outcomes.contains_key(&(id, o.index))) {
            return Ok(Recorded::Conflict);
        }
        let Some(task) = tasks.get_mut(&id) else {
            return Err(StoreError::permanent("task not found"));
        };
        let tally = Tally::of(new);
        task.succeeded += tally.succeeded;
        task.failed += tally.failed;
        task.cancelled += tally.cancelled;
        for o in new {
            outcomes.insert((id, o.index), o.clone());
        }
        task.updated_at = now;
        Ok(Recorded::All)
    }

    async fn mark_retried(&self, id: TaskId, by: TaskId) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        match tasks.get_mut(&id) {
            Some(task) if task.retried_by.is_none() => {
                task.retried_by = Some(by);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unmark_retried(&self, id: TaskId, by: TaskId) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = lock(&self.tasks).get_mut(&id) {
            if task.retried_by == Some(by) {
                task.retried_by = None;
            }
        }
        Ok(())
    }

    async fn request_cancel(
        &self,
        id: TaskId,
        now: OffsetDateTime,
    ) -> Result<CancelOutcome, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&id) else {
            return Ok(CancelOutcome::NotFound);
        };
        if task.status.is_final() {
            return Ok(CancelOutcome::AlreadyFinal(task.clone()));
        }
        task.cancel_requested_at.get_or_insert(now);
        task.updated_at = now;
        Ok(CancelOutcome::Requested(task.clone()))
    }

    async fn list_tasks(
        &self,
        owner: &Owner,
        task_type: TaskType,
        status: Option<TaskStatus>,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<(Vec<Task>, bool), StoreError> {
        let tasks = lock(&self.tasks);
        let mut mine: Vec<&Task> = tasks
            .values()
            .filter(|t| &t.owner == owner && t.task_type == task_type && !t.is_expired(now))
            .filter(|t| status.is_none_or(|s| t.status == s))
            .filter(|t| after.is_none_or(|a| t.list_position().as_str() < a))
            .collect();
        mine.sort_by_key(|t| std::cmp::Reverse(t.list_position()));
        let more = mine.len() > limit;
        Ok((mine.into_iter().take(limit).cloned().collect(), more))
    }

    async fn list_outcomes(
        &self,
        id: TaskId,
        filter: OutcomeFilter,
        after: Option<u32>,
        limit: usize,
    ) -> Result<(Vec<ItemOutcome>, bool), StoreError> {
        let outcomes = lock(&self.outcomes);
        let start = after.map_or(0, |a| a + 1);
        let mut matching = outcomes
            .range((id, start)..=(id, u32::MAX))
            .map(|(_, o)| o)
            .filter(|o| filter == OutcomeFilter::All || !o.result.is_success());
        let page: Vec<ItemOutcome> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        Ok((page, more))
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        lock(&self.webhooks).insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(lock(&self.webhooks).get(&id).cloned())
    }

    async fn replace_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        seen: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut all = lock(&self.webhooks);
        match all.get_mut(&endpoint.id) {
            Some(current) if current.updated_at == seen => {
                *current = endpoint.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError> {
        lock(&self.webhooks).remove(&id);
        Ok(())
    }

    async fn list_endpoints(
        &self,
        owner: &Owner,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<WebhookEndpoint>, bool), StoreError> {
        let mut mine: Vec<WebhookEndpoint> = lock(&self.webhooks)
            .values()
            .filter(|e| &e.owner == owner)
            .filter(|e| after.is_none_or(|a| e.list_position().as_str() < a))
            .cloned()
            .collect();
        mine.sort_by_key(|e| std::cmp::Reverse(e.list_position()));
        let more = mine.len() > limit;
        mine.truncate(limit);
        Ok((mine, more))
    }
}

#[async_trait]
impl DeliveryStore for MemoryStore {
    async fn insert_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let mut all = lock(&self.deliveries);
        if all.contains_key(&delivery.id) {
            return Ok(false);
        }
        all.insert(delivery.id.clone(), delivery.clone());
        Ok(true)
    }

    async fn get_delivery(
        &self,
        endpoint: EndpointId,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        Ok(lock(&self.deliveries)
            .get(id)
            .filter(|d| d.endpoint_id == endpoint)
            .cloned())
    }

    async fn update_delivery(
        &self,
        delivery: &Delivery,
        seen_attempts: usize,
        seen_status: DeliveryStatus,
    ) -> Result<bool, StoreError> {
        let mut all = lock(&self.deliveries);
        match all.get_mut(&delivery.id) {
            Some(d) if d.attempts.len() == seen_attempts && d.status == seen_status => {
                *d = delivery.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, bool), StoreError> {
        let position =
            |d: &Delivery| format!("{:020}#{}", d.created_at.unix_timestamp_nanos(), d.id);
        let mut mine: Vec<Delivery> = lock(&self.deliveries)
            .values()
            .filter(|d| d.endpoint_id == endpoint)
            .filter(|d| after.is_none_or(|a| position(d).as_str() < a))
            .cloned()
            .collect();
        mine.sort_by_key(|d| std::cmp::Reverse(position(d)));
        let more = mine.len() > limit;
        mine.truncate(limit);
        Ok((mine, more))
    }
}

/// Delivery messages, kept in order.
#[derive(Default)]
pub struct MemoryDeliveryQueue {
    sent: Mutex<Vec<DeliveryMessage>>,
}

impl MemoryDeliveryQueue {
    pub fn sent(&self) -> Vec<DeliveryMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl DeliveryQueue for MemoryDeliveryQueue {
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        lock(&self.sent).extend_from_slice(messages);
        Ok(())
    }
}

/// One request a [`MemoryPoster`] got: its headers and body.
pub type Received = (Vec<(&'static str, String)>, String);

/// A receiver that answers with the statuses it is given, in turn (then the last one again),
/// and keeps every request it got.
#[derive(Default)]
pub struct MemoryPoster {
    answers: Mutex<VecDeque<Result<u16, &'static str>>>,
    received: Mutex<Vec<Received>>,
}

impl MemoryPoster {
    pub fn answering(answers: &[Result<u16, &'static str>]) -> Self {
        Self {
            answers: Mutex::new(answers.iter().copied().collect()),
            ..Self::default()
        }
    }

    /// Headers and body of each request, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }
}

#[async_trait]
impl WebhookPoster for MemoryPoster {
    async fn post(&self, post: WebhookPost<'_>) -> Result<u16, &'static str> {
        lock(&self.received).push((post.headers.clone(), post.body.to_owned()));
        let mut answers = lock(&self.answers);
        match answers.len() {
            0 => Ok(200),
            1 => answers[0],
            _ => answers.pop_front().unwrap_or(Ok(200)),
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_after: std::time::Duration,
        expires_at: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut records = lock(&self.idempotency);
        if let Some(e) = records.get_mut(scope).filter(|e| e.expires_at > now) {
            if e.fingerprint != fingerprint {
                return Ok(IdempotencyBegin::Mismatch);
            }
            if let Some(r) = &e.response {
                return Ok(IdempotencyBegin::Replay(r.clone()));
            }
            if e.locked_at + stale_after > now {
                return Ok(IdempotencyBegin::InProgress);
            }
            e.locked_at = now;
            return Ok(IdempotencyBegin::Proceed);
        }
        records.insert(
            scope.to_owned(),
            IdempotencyEntry {
                fingerprint: fingerprint.to_owned(),
                locked_at: now,
                expires_at,
                response: None,
            },
        );
        Ok(IdempotencyBegin::Proceed)
    }

    async fn complete(&self, scope: &str, response: &StoredResponse) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.idempotency).get_mut(scope) {
            e.response = Some(response.clone());
        }
        Ok(())
    }

    async fn abandon(&self, scope: &str) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        lock(&self.idempotency).remove(scope);
        Ok(())
    }
}

/// A FIFO of what would have been sent, with SQS's deduplication by id; can be switched
/// "down" to test send failures.
#[derive(Default)]
pub struct MemoryQueue {
    queued: Mutex<VecDeque<WorkMessage>>,
    sent: Mutex<Vec<WorkMessage>>,
    dedup_ids: Mutex<HashSet<String>>,
    down: AtomicBool,
    send_calls: AtomicUsize,
}

impl MemoryQueue {
    /// Every message ever accepted, in order.
    pub fn sent(&self) -> Vec<WorkMessage> {
        lock(&self.sent).clone()
    }
    /// Takes the oldest message off the queue (as a consumer would receive and delete it).
    pub fn pop(&self) -> Option<WorkMessage> {
        lock(&self.queued).pop_front()
    }
    /// Messages waiting in the queue.
    pub fn pending(&self) -> usize {
        lock(&self.queued).len()
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    /// `SendMessageBatch` calls the SQS adapter would make (10 messages each).
    pub fn batch_calls(&self) -> usize {
        self.send_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn enqueue(&self, messages: &[WorkMessage]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::new("memory queue is down"));
        }
        self.send_calls
            .fetch_add(messages.len().div_ceil(10), Ordering::SeqCst);
        for m in messages {
            if lock(&self.dedup_ids).insert(m.deduplication_id()) {
                lock(&self.queued).push_back(m.clone());
                lock(&self.sent).push(m.clone());
            }
        }
        Ok(())
    }
}

/// The lane store in memory: one mutex over everything, so each method is atomic as the
/// DynamoDB transactions are.
#[derive(Default)]
pub struct MemoryLanes {
    inner: Mutex<LanesInner>,
    writes: AtomicUsize,
}

impl MemoryLanes {
    /// Write requests the DynamoDB lane store would have made: a `BatchWriteItem` per 25
    /// waiting chunks, and one transaction per append, claim or close.
    pub fn write_requests(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct LanesInner {
    states: HashMap<String, LaneState>,
    /// Owner → (first seq of a task's run, task id, chunk count).
    segments: HashMap<String, BTreeMap<u64, (TaskId, u32)>>,
    chunks: HashMap<(TaskId, u32), ChunkMessage>,
    handoffs: HashMap<Vehicle, Handoff>,
}

impl LanesInner {
    /// One atomic hand-off, as the DynamoDB transaction does it: if the owner's state is
    /// `allowed` and the vehicle's hand-off is still `replacing`, record `to` and `apply` the
    /// state change.
    fn hand_off(
        &mut self,
        owner: &str,
        allowed: impl Fn(&LaneState) -> bool,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        to: Handoff,
        apply: impl FnOnce(&mut LaneState),
    ) -> bool {
        let state = self.states.get(owner).copied().unwrap_or_default();
        if !allowed(&state) || self.handoffs.get(&vehicle).copied() != replacing {
            return false;
        }
        self.handoffs.insert(vehicle, to);
        apply(self.states.entry(owner.to_owned()).or_default());
        true
    }
}

#[async_trait]
impl LaneStore for MemoryLanes {
    async fn store_chunks(
        &self,
        chunks: &[ChunkMessage],
        _expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.writes
            .fetch_add(chunks.len().div_ceil(25), Ordering::SeqCst);
        let mut inner = lock(&self.inner);
        for c in chunks {
            inner.chunks.insert((c.task_id, c.chunk), c.clone());
        }
        Ok(())
    }

    async fn lane_state(&self, owner: &str) -> Result<LaneState, StoreError> {
        Ok(lock(&self.inner)
            .states
            .get(owner)
            .copied()
            .unwrap_or_default())
    }

    async fn append(
        &self,
        owner: &str,
        seen: LaneState,
        task_id: TaskId,
        chunks: u32,
        new_lanes: u64,
        _expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut inner = lock(&self.inner);
        let state = inner.states.entry(owner.to_owned()).or_default();
        if (state.next_seq, state.lanes) != (seen.next_seq, seen.lanes) {
            return Ok(false);
        }
        let first = state.next_seq;
        state.next_seq += u64::from(chunks);
        state.lanes += new_lanes;
        inner
            .segments
            .entry(owner.to_owned())
            .or_default()
            .insert(first, (task_id, chunks));
        Ok(true)
    }

    async fn handoff_of(&self, vehicle: Vehicle) -> Result<Option<Handoff>, StoreError> {
        Ok(lock(&self.inner).handoffs.get(&vehicle).copied())
    }

    async fn claim(
        &self,
        owner: &str,
        cursor: u64,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        _expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let allowed = |s: &LaneState| s.cursor == cursor && cursor < s.next_seq;
        Ok(lock(&self.inner).hand_off(
            owner,
            allowed,
            vehicle,
            replacing,
            Handoff::Seq(cursor),
            |s| s.cursor += 1,
        ))
    }

    async fn close_lane(
        &self,
        owner: &str,
        cursor: u64,
        uncount: bool,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        _expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let allowed = |s: &LaneState| {
            s.cursor == cursor && s.next_seq == cursor && !(uncount && s.lanes == 0)
        };
        Ok(
            lock(&self.inner).hand_off(owner, allowed, vehicle, replacing, Handoff::End, |s| {
                if uncount {
                    s.lanes -= 1;
                }
            }),
        )
    }

    async fn chunk_at(&self, owner: &str, seq: u64) -> Result<Option<ChunkMessage>, StoreError> {
        let inner = lock(&self.inner);
        let found = inner
            .segments
            .get(owner)
            .and_then(|segments| segments.range(..=seq).next_back())
            .map(|(first, (task_id, _))| (*task_id, (seq - first) as u32));
        Ok(found.and_then(|key| inner.chunks.get(&key).cloned()))
    }
}

/// A back office that honours idempotency keys and can reject IBANs or be unavailable.
#[derive(Default)]
pub struct MemoryBackend {
    by_key: Mutex<HashMap<String, CreatedBeneficiary>>,
    rejected_ibans: Mutex<HashSet<String>>,
    flaky_ibans: Mutex<HashSet<String>>,
    unavailable: AtomicBool,
    creations: AtomicUsize,
    validations: AtomicUsize,
    calls: AtomicUsize,
    /// The trace id each call ran in (`None`: no trace), in call order.
    trace_ids: Mutex<Vec<Option<String>>>,
}

impl MemoryBackend {
    pub fn creations(&self) -> usize {
        self.creations.load(Ordering::SeqCst)
    }
    /// Every call, whatever its answer.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn validations(&self) -> usize {
        self.validations.load(Ordering::SeqCst)
    }
    /// The trace id of every call so far, as the BOS client would have sent it.
    pub fn trace_ids(&self) -> Vec<Option<String>> {
        lock(&self.trace_ids).clone()
    }
    pub fn reject_iban(&self, iban: &str) {
        lock(&self.rejected_ibans).insert(iban.to_owned());
    }
    /// Calls for this IBAN fail transiently, others go through.
    pub fn fail_iban_transiently(&self, iban: &str) {
        lock(&self.flaky_ibans).insert(iban.to_owned());
    }
    pub fn set_unavailable(&self, v: bool) {
        self.unavailable.store(v, Ordering::SeqCst);
    }
}

impl MemoryBackend {
    fn check(&self, b: &Beneficiary) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.trace_ids).push(crate::trace::current().map(|t| t.trace_id()));
        if self.unavailable.load(Ordering::SeqCst) || lock(&self.flaky_ibans).contains(b.iban()) {
            return Err(BackendError::Unavailable("503".into()));
        }
        if lock(&self.rejected_ibans).contains(b.iban()) {
            return Err(BackendError::Rejected(Rejection {
                kind: RejectionKind::Duplicate,
                code: "duplicate_beneficiary".into(),
                message: "A beneficiary with this IBAN already exists.".into(),
                field: Some("iban".into()),
            }));
        }
        Ok(())
    }
}

#[async_trait]
impl BeneficiaryBackend for MemoryBackend {
    async fn validate(
        &self,
        b: &Beneficiary,
        _key: &str,
        _deadline: Instant,
    ) -> Result<(), BackendError> {
        self.check(b)?;
        self.validations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn create(
        &self,
        b: &Beneficiary,
        key: &str,
        _deadline: Instant,
    ) -> Result<CreatedBeneficiary, BackendError> {
        self.check(b)?;
        let mut by_key = lock(&self.by_key);
        if let Some(first) = by_key.get(key) {
            return Ok(first.clone());
        }
        let n = self.creations.fetch_add(1, Ordering::SeqCst);
        let created = CreatedBeneficiary {
            id: format!("ben_{n}"),
            name: b.name().to_owned(),
            country: b.country().to_owned(),
            currency: b.currency().to_owned(),
            iban: b.iban().to_owned(),
            bic: b.bic().map(str::to_owned),
            email: b.email().map(str::to_owned),
            external_id: b.external_id().map(str::to_owned),
            created_at: "2026-01-01T00:00:00Z".into(),
        };
        by_key.insert(key.to_owned(), created.clone());
        Ok(created)
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put_connection(
        &self,
        id: &ConnectionId,
        owner: &Owner,
        _expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        lock(&self.connections).insert(id.clone(), (owner.clone(), BTreeSet::new()));
        Ok(())
    }

    async fn watched_tasks(&self, id: &ConnectionId) -> Result<Option<Vec<TaskId>>, StoreError> {
        Ok(lock(&self.connections)
            .get(id)
            .map(|(_, tasks)| tasks.iter().copied().collect()))
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), StoreError> {
        lock(&self.connections).remove(id);
        Ok(())
    }

    async fn subscribe(
        &self,
        id: &ConnectionId,
        task: TaskId,
        _expires_at: OffsetDateTime,
    ) -> Result<Subscribed, StoreError> {
        let mut connections = lock(&self.connections);
        let Some((_, tasks)) = connections.get_mut(id) else {
            return Ok(Subscribed::NoConnection);
        };
        if !tasks.contains(&task) && tasks.len() >= MAX_SUBSCRIPTIONS {
            return Ok(Subscribed::TooMany);
        }
        tasks.insert(task);
        Ok(Subscribed::Yes)
    }

    async fn unsubscribe(&self, id: &ConnectionId, task: TaskId) -> Result<(), StoreError> {
        if let Some((_, tasks)) = lock(&self.connections).get_mut(id) {
            tasks.remove(&task);
        }
        Ok(())
    }

    async fn subscribers(&self, task: TaskId) -> Result<Vec<ConnectionId>, StoreError> {
        Ok(lock(&self.connections)
            .iter()
            .filter(|(_, (_, tasks))| tasks.contains(&task))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn claim_final(&self, id: &ConnectionId, task: TaskId) -> Result<bool, StoreError> {
        Ok(lock(&self.connections)
            .get_mut(id)
            .is_some_and(|(_, tasks)| tasks.remove(&task)))
    }
}

/// Frames pushed, per connection, in order; connections marked gone answer `Gone`.
#[derive(Default)]
pub struct MemoryPusher {
    frames: Mutex<BTreeMap<ConnectionId, Vec<String>>>,
    gone: Mutex<BTreeSet<ConnectionId>>,
}

impl MemoryPusher {
    pub fn frames(&self, id: &ConnectionId) -> Vec<serde_json::Value> {
        lock(&self.frames)
            .get(id)
            .into_iter()
            .flatten()
            .map(|f| serde_json::from_str(f).unwrap_or_default())
            .collect()
    }

    pub fn close(&self, id: &ConnectionId) {
        lock(&self.gone).insert(id.clone());
    }
}

#[async_trait]
impl FramePusher for MemoryPusher {
    async fn push(&self, id: &ConnectionId, frame: &str) -> Result<(), PushError> {
        if lock(&self.gone).contains(id) {
            return Err(PushError::Gone);
        }
        lock(&self.frames)
            .entry(id.clone())
            .or_default()
            .push(frame.to_owned());
        Ok(())
    }
}
