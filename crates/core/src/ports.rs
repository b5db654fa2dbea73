//! Ports: the narrow traits through which use cases reach the outside world. DynamoDB, SQS
//! and the BOS HTTP client implement them at the edge; [`crate::memory`] implements them for
//! unit tests. Each error says whether trying again can help.

use crate::beneficiary::{Beneficiary, CreatedBeneficiary};
use crate::breaker::BreakerRecord;
use crate::chunk::{ChunkMessage, WorkMessage};
use crate::error_body::ErrorObject;
use crate::identity::Owner;
use crate::live_progress::ConnectionId;
use crate::live_ticket::TicketKey;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::task::{Task, TaskId, TaskStatus, TaskType};
use crate::upload::{Upload, Validation};
use crate::upstream::BackendError;
use crate::webhook::{EndpointId, WebhookEndpoint};
use crate::webhook_delivery::{Delivery, DeliveryMessage, DeliveryStatus};
use crate::webhook_url::WebhookUrl;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Instant;
use time::OffsetDateTime;

/// Which outcomes a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    All,
    FailedOnly,
    /// Failed and not-attempted items: what `?include=all_failed` retries.
    FailedOrNotAttempted,
}

impl OutcomeFilter {
    /// Whether a listing with this filter returns `outcome`.
    pub fn keeps(self, outcome: &ItemOutcome) -> bool {
        match self {
            Self::All => true,
            Self::FailedOnly => matches!(outcome.result, OutcomeResult::Failed { .. }),
            Self::FailedOrNotAttempted => matches!(
                outcome.result,
                OutcomeResult::Failed { .. } | OutcomeResult::NotAttempted
            ),
        }
    }
}

/// What a failed store or queue call carries for the logs: the SDK's error, or a sentence.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure, with its cause for the logs (never for a response).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, a conflicting transaction, time-outs, network trouble: the same call may
    /// well succeed a moment later.
    #[error("store call failed, worth retrying")]
    Transient(#[source] Cause),
    /// A refused request or a record we cannot read: retrying changes nothing.
    #[error("store call failed")]
    Permanent(#[source] Cause),
}

impl StoreError {
    pub fn transient(cause: impl Into<Cause>) -> Self {
        Self::Transient(cause.into())
    }

    pub fn permanent(cause: impl Into<Cause>) -> Self {
        Self::Permanent(cause.into())
    }
}

/// What [`TaskStore::request_cancel`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Cancellation is recorded (now or earlier); the task as it stands.
    Requested(Task),
    /// The task was already final.
    AlreadyFinal(Task),
    NotFound,
}

/// How a task's validation ends ([`TaskStore::end_validation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationEnd {
    /// `queued`, or a final status.
    pub to: TaskStatus,
    pub total: u32,
    /// Rows never made items, counted without an outcome each: `cancelled` when the task was
    /// cancelled during validation, `not_attempted` when its file was rejected.
    pub cancelled: u32,
    pub not_attempted: u32,
    pub validation: Validation,
    pub rejection: Option<ErrorObject>,
    /// Set when `to` is final.
    pub expires_at: Option<OffsetDateTime>,
}

/// What [`TaskStore::record_outcomes`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Every outcome was written and the counters moved, atomically. `may_complete` is false
    /// when the store could tell that items of the task are still without an outcome after
    /// this write, so the task cannot be complete and nobody needs to read it to check.
    All { may_complete: bool },
    /// At least one item already had an outcome (a redelivery raced us); nothing was written.
    Conflict,
}

/// What a chunk reads before its first call to BOS.
#[derive(Debug, Clone)]
pub struct ChunkState {
    pub task: Task,
    /// Which of the chunk's items already have an outcome.
    pub done: HashSet<u32>,
    /// The breaker's record, where the store read it in the same request: the chunk's first
    /// round of calls starts from it, instead of a read of its own a moment later.
    pub breaker: Option<BreakerRecord>,
}

impl ChunkState {
    /// The task and its done items read one after the other, for a store without one request
    /// for both; `breaker` as the store has it at hand, if it does.
    pub async fn read_in_parts<S: TaskStore + ?Sized>(
        store: &S,
        id: TaskId,
        indexes: &[u32],
        breaker: Option<BreakerRecord>,
    ) -> Result<Option<Self>, StoreError> {
        let Some(task) = store.get_task(id).await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            task,
            done: store.final_items(id, indexes).await?,
            breaker,
        }))
    }
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Writes a new task; its id is random, so this never overwrites.
    async fn insert_task(&self, task: &Task) -> Result<(), StoreError>;

    /// Strongly consistent read of a task; expiry is the caller's business.
    async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError>;

    /// Removes a task nobody was told about (its enqueue failed).
    async fn delete_task(&self, id: TaskId) -> Result<(), StoreError>;

    /// Moves the task from `from` to `to` if it is still in `from`; false if another writer
    /// moved it first. Sets `started_at`, `finished_at` and `expires_at` as `to` implies.
    async fn transition(
        &self,
        id: TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Which of these item indexes already have an outcome.
    async fn final_items(&self, id: TaskId, indexes: &[u32]) -> Result<HashSet<u32>, StoreError>;

    /// The task and which of these items already have an outcome, or `None` if the task does
    /// not exist. Stores that can do it in one request (DynamoDB) override this, and read the
    /// breaker in front of BOS in the same request.
    async fn chunk_state(
        &self,
        id: TaskId,
        indexes: &[u32],
    ) -> Result<Option<ChunkState>, StoreError> {
        ChunkState::read_in_parts(self, id, indexes, None).await
    }

    /// Writes outcomes of items that have none yet and adds them to the task's counters in one
    /// atomic step, so counters can never disagree with the items, whatever crashes.
    ///
    /// `total` is the task's item count when it is settled (the task runs): with it the store
    /// can answer `may_complete: false` for every write but the one that completes the task.
    async fn record_outcomes(
        &self,
        id: TaskId,
        outcomes: &[ItemOutcome],
        total: Option<u32>,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<Recorded, StoreError>;

    /// Records that `by` retries the task's failed items, unless another task already does:
    /// `false` then. A task is retried at most once.
    async fn mark_retried(&self, id: TaskId, by: TaskId) -> Result<bool, StoreError>;

    /// Undoes [`TaskStore::mark_retried`] for `by` (its task could not be created).
    async fn unmark_retried(&self, id: TaskId, by: TaskId) -> Result<(), StoreError>;

    /// Says whether a chunk of the task waits on the breaker in front of BOS: sets
    /// `waiting_since` (keeping an earlier one) or clears it. A task that no longer exists is
    /// left alone.
    async fn set_waiting(
        &self,
        id: TaskId,
        since: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;

    /// Records how far the ingest of the task's file got (`crate::upload::Validation`), if its
    /// checkpoint is still `seen`: the task as it now stands, or `None` if another writer moved
    /// the checkpoint first (or the task is gone).
    async fn save_validation(
        &self,
        id: TaskId,
        seen: &Validation,
        next: &Validation,
        now: OffsetDateTime,
    ) -> Result<Option<Task>, StoreError>;

    /// Ends a `validating` task's validation as `end` says; false if the task had left
    /// `validating` already.
    async fn end_validation(
        &self,
        id: TaskId,
        end: &ValidationEnd,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Records that the final task's result and errors files are written.
    async fn mark_result_files(&self, id: TaskId) -> Result<(), StoreError>;

    /// Marks the task for cancellation if it is not final yet.
    async fn request_cancel(
        &self,
        id: TaskId,
        now: OffsetDateTime,
    ) -> Result<CancelOutcome, StoreError>;

    /// The owner's tasks of one type, newest first, optionally of one status, starting after
    /// the position `after` (see [`Task::list_position`]), hiding expired ones. Returns the
    /// page and whether more may follow.
    async fn list_tasks(
        &self,
        owner: &Owner,
        task_type: TaskType,
        status: Option<TaskStatus>,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<(Vec<Task>, bool), StoreError>;

    /// Outcomes by ascending index, starting after `after`; returns the page and whether more
    /// may follow.
    async fn list_outcomes(
        &self,
        id: TaskId,
        filter: OutcomeFilter,
        after: Option<u32>,
        limit: usize,
    ) -> Result<(Vec<ItemOutcome>, bool), StoreError>;
}

/// A response kept for `Idempotency-Key` replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What [`IdempotencyStore::begin`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use of the key (or a stale, abandoned attempt): go ahead.
    Proceed,
    /// The same request was answered before: send this again.
    Replay(StoredResponse),
    /// The same request is being processed right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// Idempotency records, keyed by a scope that already binds caller and key.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key for this request's fingerprint, or says why not. Expired records count
    /// as absent; an in-progress claim older than `stale_after` may be taken over.
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_after: std::time::Duration,
        expires_at: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Stores the answer to replay.
    async fn complete(&self, scope: &str, response: &StoredResponse) -> Result<(), StoreError>;

    /// Releases the key (the request failed on our side; the client may retry it).
    async fn abandon(&self, scope: &str) -> Result<(), StoreError>;
}

/// The work queue did not take every message; the cause is for the logs.
#[derive(Debug, thiserror::Error)]
#[error("work queue send failed")]
pub struct QueueError(#[source] pub Cause);

impl QueueError {
    pub fn new(cause: impl Into<Cause>) -> Self {
        Self(cause.into())
    }
}

#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends every message or fails; a retried send of the same message is deduplicated by
    /// SQS (within its five-minute window).
    async fn enqueue(&self, messages: &[WorkMessage]) -> Result<(), QueueError>;

    /// Sends `message` again as a *new* message (a fresh deduplication id), for one that
    /// waited on the breaker until its invocation ran out: the copy starts with a fresh
    /// receive count, so waiting spends nothing of the retry budget (`maxReceiveCount`).
    async fn requeue(&self, message: &WorkMessage) -> Result<(), QueueError>;
}

/// Where the breaker in front of BOS keeps its shared state ([`crate::breaker`]).
#[async_trait]
pub trait BreakerStore: Send + Sync {
    /// Strongly consistent read; a breaker never written is closed (the default record).
    async fn read_breaker(&self) -> Result<BreakerRecord, StoreError>;

    /// Writes `next` if the stored record is still at version `seen` (0: none stored); false
    /// if another writer came first.
    async fn write_breaker(&self, seen: u64, next: &BreakerRecord) -> Result<bool, StoreError>;
}

/// One caller's place in the scheduler: a sequence of chunks (every chunk the caller ever
/// submitted, numbered in submission order), how far lanes have taken it, and how many lanes
/// are open. `cursor <= next_seq` always.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneState {
    /// One past the last chunk appended.
    pub next_seq: u64,
    /// The next chunk no lane has taken yet.
    pub cursor: u64,
    /// Lanes open: each holds at most one chunk in the queue and one in work.
    pub lanes: u64,
}

/// How a [`LaneStore::claim`] or [`LaneStore::close_lane`] ended. A lost step says what it
/// learnt when it can: a lane that lost a race to its caller's other lanes then tries again
/// without reading the state and its own hand-off first (two reads fewer a race).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneStep {
    /// It happened.
    Done,
    /// Another writer moved the owner's state first, and this vehicle's hand-off is still as
    /// the step expected: here is the state as the store found it.
    Moved(LaneState),
    /// It did not happen, for a reason the caller must read again to learn.
    Lost,
}

/// A message that carries a lane forward: on receipt it hands the lane on exactly once, and
/// the store remembers what it handed on, so a redelivery repeats the same hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vehicle {
    Chunk { task_id: TaskId, chunk: u32 },
    Start { task_id: TaskId, lane: u32 },
}

/// What a vehicle handed its lane on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The chunk at this position of the owner's sequence.
    Seq(u64),
    /// Nothing: the owner had no chunk left, and the lane closed.
    End,
}

/// Where lanes, sequences and waiting chunks are kept (DynamoDB in AWS). Each method is one
/// atomic step; `Ok(false)` means another writer changed the state first: read and try again.
#[async_trait]
pub trait LaneStore: Send + Sync {
    /// Keeps a task's chunks until lanes take them; they expire at `expires_at`.
    async fn store_chunks(
        &self,
        chunks: &[ChunkMessage],
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    async fn lane_state(&self, owner: &str) -> Result<LaneState, StoreError>;

    /// Appends `chunks` chunks of `task_id` to the owner's sequence and opens `new_lanes`
    /// lanes, if the owner's `next_seq` and `lanes` are still those of `seen`.
    async fn append(
        &self,
        owner: &str,
        seen: LaneState,
        task_id: TaskId,
        chunks: u32,
        new_lanes: u64,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// What `vehicle` handed on, if it did.
    async fn handoff_of(&self, vehicle: Vehicle) -> Result<Option<Handoff>, StoreError>;

    /// Takes the chunk at `cursor` for `vehicle`: the owner's cursor moves past it and the
    /// vehicle records it, in one step. `replacing` is the vehicle's earlier hand-off to a
    /// chunk that no longer exists, if any.
    async fn claim(
        &self,
        owner: &str,
        cursor: u64,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        expires_at: OffsetDateTime,
    ) -> Result<LaneStep, StoreError>;

    /// Closes the vehicle's lane, if the owner has no chunk left at `cursor` (no chunk was
    /// appended since). `uncount` lowers the open-lane count; it is false when the count is
    /// already 0 (a lane that was never counted, see `usecases::schedule`).
    async fn close_lane(
        &self,
        owner: &str,
        cursor: u64,
        uncount: bool,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        expires_at: OffsetDateTime,
    ) -> Result<LaneStep, StoreError>;

    /// The chunk at `seq` of the owner's sequence; `None` once it has expired.
    async fn chunk_at(&self, owner: &str, seq: u64) -> Result<Option<ChunkMessage>, StoreError>;
}

/// The upstream that really creates beneficiaries (today BOS, tomorrow perhaps a beneficiary
/// command service).
#[async_trait]
pub trait BeneficiaryBackend: Send + Sync {
    /// Creates one beneficiary. The same `idempotency_key` always yields the first answer and
    /// never a second creation. Retries stop before `deadline`.
    async fn create(
        &self,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<CreatedBeneficiary, BackendError>;

    /// Checks one beneficiary as `create` would, creating nothing.
    async fn validate(
        &self,
        beneficiary: &Beneficiary,
        idempotency_key: &str,
        deadline: Instant,
    ) -> Result<(), BackendError>;
}

/// Webhook endpoints. The store keeps them; the use cases check ownership.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Writes a new endpoint; its id is random, so this never overwrites.
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Replaces the endpoint if nobody changed it since `seen` (its `updated_at` then); false
    /// if somebody did, or it is gone.
    async fn replace_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        seen: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError>;

    /// The owner's endpoints, newest first, after the position `after` (see
    /// [`WebhookEndpoint::list_position`]); the page and whether more may follow.
    async fn list_endpoints(
        &self,
        owner: &Owner,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<WebhookEndpoint>, bool), StoreError>;
}

/// Webhook deliveries, one per event and endpoint.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Writes a new delivery unless one with its id exists: `false` if it did.
    async fn insert_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError>;

    async fn get_delivery(
        &self,
        endpoint: EndpointId,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Replaces the delivery if it still has `seen_attempts` attempts and the same status, so
    /// two senders cannot both record an attempt; `false` if another got there first.
    async fn update_delivery(
        &self,
        delivery: &Delivery,
        seen_attempts: usize,
        seen_status: DeliveryStatus,
    ) -> Result<bool, StoreError>;

    /// The endpoint's deliveries, newest first, after `after`; the page and whether more
    /// may follow.
    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, bool), StoreError>;
}

/// Where deliveries wait for the sender (an SQS standard queue in AWS).
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError>;
}

/// One webhook POST, to addresses already checked (`webhook_url::resolve`).
pub struct WebhookPost<'a> {
    pub url: &'a WebhookUrl,
    pub addresses: &'a [std::net::SocketAddr],
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a str,
    pub timeout: std::time::Duration,
}

/// Sends webhooks over HTTP.
#[async_trait]
pub trait WebhookPoster: Send + Sync {
    /// POSTs once, following no redirect and reading at most
    /// `webhook_delivery::MAX_ANSWER_BYTES` of the answer: the status if the receiver
    /// answered, else why not (`timeout`, `connection_failed`).
    async fn post(&self, post: WebhookPost<'_>) -> Result<u16, &'static str>;
}

/// What [`ConnectionStore::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// The connection watches the task (now, or already did).
    Yes,
    /// The connection watches [`crate::live_progress::MAX_SUBSCRIPTIONS`] tasks already.
    TooMany,
    /// The connection is not (or no longer) known.
    NoConnection,
}

/// Live progress connections and which tasks they watch.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Records a new connection of `owner`'s, kept until `expires_at` at most.
    async fn put_connection(
        &self,
        id: &ConnectionId,
        owner: &Owner,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The tasks the connection watches; `None` if the connection is unknown.
    async fn watched_tasks(&self, id: &ConnectionId) -> Result<Option<Vec<TaskId>>, StoreError>;

    /// Forgets the connection and every subscription it had.
    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), StoreError>;

    /// Makes the connection watch `task` (idempotent), up to the per-connection cap.
    async fn subscribe(
        &self,
        id: &ConnectionId,
        task: TaskId,
        expires_at: OffsetDateTime,
    ) -> Result<Subscribed, StoreError>;

    /// Ends one subscription (idempotent).
    async fn unsubscribe(&self, id: &ConnectionId, task: TaskId) -> Result<(), StoreError>;

    /// The connections watching `task`.
    async fn subscribers(&self, task: TaskId) -> Result<Vec<ConnectionId>, StoreError>;

    /// Ends the subscription if it still exists: `true` for exactly one caller, who then
    /// sends its `final` frame.
    async fn claim_final(&self, id: &ConnectionId, task: TaskId) -> Result<bool, StoreError>;
}

/// Live tickets (`crate::live_ticket`): single-use keys to open live progress from a browser.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Keeps a ticket of `owner`'s until `expires_at`.
    async fn put_ticket(
        &self,
        key: &TicketKey,
        owner: &Owner,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Removes the ticket and answers its owner if it had not expired at `now`: exactly one
    /// caller ever gets the owner of a ticket.
    async fn take_ticket(
        &self,
        key: &TicketKey,
        now: OffsetDateTime,
    ) -> Result<Option<Owner>, StoreError>;
}

/// Why a frame was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is closed (API Gateway's `GoneException`).
    #[error("the connection is gone")]
    Gone,
    #[error("posting to the connection failed")]
    Failed(#[source] Cause),
}

/// Sends frames to WebSocket connections (API Gateway's `@connections` API in AWS).
#[async_trait]
pub trait FramePusher: Send + Sync {
    async fn push(&self, id: &ConnectionId, frame: &str) -> Result<(), PushError>;
}

/// A request pre-signed for the client: the URL, method and headers to send as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

/// What the file store says of a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub size: u64,
    /// SHA-256, base64, when the store computed or kept one.
    pub checksum_sha256: Option<String>,
}

/// A file read as a blocking stream: read it off the async runtime (`spawn_blocking`).
pub type FileReader = Box<dyn std::io::Read + Send>;

/// Where uploaded files are kept (an S3 bucket in AWS). Keys come from `crate::upload`.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// A PUT the client can make for `upload`'s file, bound to its length and checksum.
    async fn presign_upload(
        &self,
        key: &str,
        upload: &Upload,
        valid_for: std::time::Duration,
    ) -> Result<PresignedRequest, StoreError>;

    /// The stored file's size and checksum; `None` if nothing is stored under `key`.
    async fn head(&self, key: &str) -> Result<Option<StoredFile>, StoreError>;

    /// The stored file as a stream; `None` if nothing is stored under `key`.
    async fn open(&self, key: &str) -> Result<Option<FileReader>, StoreError>;

    /// Deletes the file (idempotent).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// A new file written as a stream (S3: a multipart upload), in constant memory; it
    /// replaces any file under `key` once finished.
    async fn create(&self, key: &str, content_type: &str) -> Result<Box<dyn FileSink>, StoreError>;

    /// A GET the client can make for the file under `key`.
    async fn presign_download(
        &self,
        key: &str,
        valid_for: std::time::Duration,
    ) -> Result<String, StoreError>;
}

/// A file being written ([`FileStore::create`]).
#[async_trait]
pub trait FileSink: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;

    /// Makes the file whole and visible; a sink dropped unfinished leaves no file.
    async fn finish(self: Box<Self>) -> Result<(), StoreError>;
}

/// One run of the ingest of a task's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestMessage {
    pub task_id: TaskId,
    /// 0 for the run a closed upload starts; each run that hands on to the next (its
    /// invocation running out of time) counts one up.
    #[serde(default)]
    pub run: u32,
    /// What the run does: read the task's file in, or write its outcome files out.
    #[serde(default)]
    pub kind: RunKind,
}

/// The two jobs of the file function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Read an uploaded file into the task's chunks (`usecases::ingest`).
    #[default]
    Ingest,
    /// Write a final task's result and errors files (`usecases::export`).
    Export,
}

impl IngestMessage {
    /// Run `run` of the task's ingest.
    pub fn ingest(task_id: TaskId, run: u32) -> Self {
        Self {
            task_id,
            run,
            kind: RunKind::Ingest,
        }
    }

    /// The export of the final task's files.
    pub fn export(task_id: TaskId) -> Self {
        Self {
            task_id,
            run: 0,
            kind: RunKind::Export,
        }
    }

    /// SQS FIFO deduplication id: one per run, one for the export.
    pub fn deduplication_id(&self) -> String {
        match self.kind {
            RunKind::Ingest => format!("{}:ingest:{}", self.task_id, self.run),
            RunKind::Export => format!("{}:export", self.task_id),
        }
    }
}

impl crate::trace::Traced for IngestMessage {
    /// A run carries no trace of its own: it runs in its invocation's.
    fn trace(&self) -> Option<&crate::trace::Trace> {
        None
    }
}

/// Where ingest runs wait (an SQS FIFO queue in AWS, one message group per task, so one
/// task's runs never overlap).
#[async_trait]
pub trait IngestQueue: Send + Sync {
    async fn send(&self, message: IngestMessage) -> Result<(), QueueError>;
}
