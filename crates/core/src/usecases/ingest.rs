//! The streamed ingest of an uploaded file (the ingest function): read the file row by row,
//! validate each row as an inline item is validated, and store the task's waiting chunks as
//! they fill; then hand the chunks to the owner's lanes, as a submission does.
//!
//! - **Constant memory.** The file is read as a stream on a blocking thread
//!   ([`parse_file`]), which sends finished chunks and invalid rows over a small channel; the
//!   async side writes them. What grows with the file is one 12-byte entry per `external_id`
//!   (to refuse duplicates, as inline).
//! - **Checkpoints.** Every [`CHUNKS_PER_CHECKPOINT`] chunks, the run writes what it stored
//!   and recorded into the task (`upload::Validation`, a compare-and-set). The parse is
//!   deterministic, so a run that starts again (a redelivery after a crash, or the next run of
//!   a long file) reads the file from its start and writes only what lies past the
//!   checkpoint: no chunk is stored twice or skipped, no invalid row recorded twice.
//! - **Time.** A run that nears its invocation's deadline writes a checkpoint and sends the
//!   next run, so a file of any length finishes however many 15-minute invocations it takes.
//! - **Cancel.** Each checkpoint returns the task; a cancel request ends the validation there.
//! - **Ending.** Rows that are all valid (or `invalid_rows: skip`) make the task `queued`, and
//!   its chunks join the lanes. With `reject` (the default) one invalid row refuses the file:
//!   the task ends `rejected`, its invalid rows listed as failed items, nothing sent to BOS.
//!   A file that is not what the session declared (length, SHA-256), is empty, has too many
//!   rows, or stops making sense (malformed CSV, a line too long) is `rejected` too.

use crate::beneficiary::Beneficiary;
use crate::chunk::{ChunkItem, ChunkMessage};
use crate::config::Settings;
use crate::csv_input::ReadError;
use crate::error::{AppError, Chain};
use crate::error_body::{ErrorDetail, ErrorObject};
use crate::file_rows::{FileRow, FileRows};
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::ports::{
    FileReader, FileStore, IngestMessage, IngestQueue, LaneStore, QueueError, StoreError,
    TaskStore, ValidationEnd, WorkQueue,
};
use crate::task::{Task, TaskId, TaskStatus, TaskType};
use crate::upload::{InvalidRows, Upload, Validation};
use crate::usecases::record_outcomes::{finish_if_complete, record};
use crate::usecases::schedule::{self, Admission, ScheduleError};
use crate::usecases::upload_task::object_key;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// Chunks stored between two checkpoints (2,048 items at the template's chunk size).
pub const CHUNKS_PER_CHECKPOINT: usize = 64;

/// Invalid rows recorded at once (one outcome transaction holds at most 99 and the counters).
const OUTCOMES_PER_WRITE: usize = 99;

/// Invalid rows kept before a checkpoint writes them.
const INVALID_PER_CHECKPOINT: usize = 4 * OUTCOMES_PER_WRITE;

/// Time kept back from the invocation's deadline to write the checkpoint and send the next
/// run.
pub const HAND_ON_MARGIN: Duration = Duration::from_secs(20);

/// The ports an ingest run works through.
#[derive(Clone, Copy)]
pub struct IngestPorts<'a> {
    pub store: &'a dyn TaskStore,
    pub lanes: &'a dyn LaneStore,
    pub queue: &'a dyn WorkQueue,
    pub files: &'a dyn FileStore,
    pub ingest: &'a dyn IngestQueue,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The task was not validating (already done, or gone): nothing to do.
    Nothing,
    /// The run neared its deadline and sent the next one.
    HandedOn,
    /// The task's chunks joined the lanes (or every row was invalid and skipped, and the task
    /// finished).
    Queued,
    Rejected,
    Cancelled,
}

/// A run that failed, to be tried again (its message is redelivered).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("the file could not be read")]
    Read(#[source] std::io::Error),
    #[error("another run moved the task's checkpoint")]
    Contended,
    #[error("the file reader stopped unexpectedly")]
    Parser,
}

/// What the parsing thread sends.
enum Piece {
    Chunk(ChunkMessage),
    Invalid(ItemOutcome),
    End(FileEnd),
    Refused(AppError),
    ReadFailed(std::io::Error),
}

/// The whole file, read.
struct FileEnd {
    rows: u32,
    bytes: u64,
    sha256: String,
}

/// Runs one ingest of `message`'s task, until its end or `deadline` (less the margin).
#[tracing::instrument(skip_all, fields(task_id = %message.task_id, run = message.run))]
pub async fn run(
    ports: IngestPorts<'_>,
    settings: &Settings,
    message: IngestMessage,
    deadline: Instant,
) -> Result<RunEnd, IngestError> {
    let id = message.task_id;
    let Some(task) = ports.store.get_task(id).await? else {
        return Ok(RunEnd::Nothing);
    };
    let Some(upload) = task.upload.clone() else {
        return Ok(RunEnd::Nothing);
    };
    match task.status {
        TaskStatus::Validating => {}
        // Validation ended, but its chunks may not have joined the lanes (a crash between).
        TaskStatus::Queued if !task.validation.admitted => {
            admit(ports, settings, &task).await?;
            return Ok(RunEnd::Queued);
        }
        _ => return Ok(RunEnd::Nothing),
    }
    if task.cancel_requested_at.is_some() {
        return end_early(ports, settings, &task, task.validation, None).await;
    }
    let Some(reader) = ports.files.open(&object_key(id)).await? else {
        let refusal = AppError::UploadNotReceived.body().error;
        return end_early(ports, settings, &task, task.validation, Some(refusal)).await;
    };
    let mut ingest = Ingest::new(ports, settings, &task, upload);
    let (tx, mut rx) = mpsc::channel(CHUNKS_PER_CHECKPOINT);
    let parser = {
        let job = ParseJob::of(&task, settings);
        let format = ingest.upload.format;
        tokio::task::spawn_blocking(move || parse_file(reader, format, &job, &tx))
    };
    let outcome = loop {
        let Some(piece) = rx.recv().await else {
            break Err(IngestError::Parser);
        };
        match piece {
            Piece::Chunk(chunk) => ingest.take_chunk(chunk),
            Piece::Invalid(outcome) => ingest.take_invalid(outcome),
            Piece::End(end) => break ingest.finish(end).await,
            Piece::Refused(error) => {
                ingest.flush().await?;
                break ingest.reject(error.body().error).await;
            }
            Piece::ReadFailed(e) => break Err(IngestError::Read(e)),
        }
        if ingest.is_due() {
            if let Some(end) = ingest.flush().await? {
                break Ok(end);
            }
        }
        if Instant::now() + HAND_ON_MARGIN >= deadline {
            if let Some(end) = ingest.flush().await? {
                break Ok(end);
            }
            ports
                .ingest
                .send(IngestMessage::ingest(id, message.run + 1))
                .await?;
            tracing::info!(
                rows = ingest.counts.rows_read,
                "run nears its deadline; next run sent"
            );
            break Ok(RunEnd::HandedOn);
        }
    };
    // Dropping the receiver stops the parser at its next row.
    drop(rx);
    let _ = parser.await;
    outcome
}

/// One run's state: the checkpoint it started from, what it has read, what waits to be
/// written.
struct Ingest<'a> {
    ports: IngestPorts<'a>,
    settings: &'a Settings,
    task: Task,
    upload: Upload,
    /// The last checkpoint written.
    saved: Validation,
    /// Counts of the rows read in this run (from the file's start).
    counts: Validation,
    chunks: Vec<ChunkMessage>,
    invalid: Vec<ItemOutcome>,
}

impl<'a> Ingest<'a> {
    fn new(ports: IngestPorts<'a>, settings: &'a Settings, task: &Task, upload: Upload) -> Self {
        Self {
            ports,
            settings,
            task: task.clone(),
            upload,
            saved: task.validation,
            counts: Validation::default(),
            chunks: Vec::new(),
            invalid: Vec::new(),
        }
    }

    fn take_chunk(&mut self, chunk: ChunkMessage) {
        let items = chunk.items.len() as u32;
        self.counts.rows_valid += items;
        if let Some(last) = chunk.items.last() {
            self.counts.rows_read = self.counts.rows_read.max(last.index + 1);
        }
        self.counts.chunks_stored = chunk.chunk + 1;
        if chunk.chunk >= self.saved.chunks_stored {
            self.chunks.push(chunk);
        }
    }

    fn take_invalid(&mut self, outcome: ItemOutcome) {
        self.counts.rows_invalid += 1;
        self.counts.rows_read = self.counts.rows_read.max(outcome.index + 1);
        self.counts.invalid_recorded = outcome.index + 1;
        if outcome.index >= self.saved.invalid_recorded {
            self.invalid.push(outcome);
        }
    }

    fn is_due(&self) -> bool {
        self.chunks.len() >= CHUNKS_PER_CHECKPOINT || self.invalid.len() >= INVALID_PER_CHECKPOINT
    }

    fn expires_at(&self) -> OffsetDateTime {
        // Waiting chunks outlive their task by a day, like item outcomes.
        OffsetDateTime::now_utc() + self.settings.retention + Duration::from_secs(86_400)
    }

    /// Writes what waits and the checkpoint. Returns how the run ends if the checkpoint shows
    /// it must (a cancel request).
    async fn flush(&mut self) -> Result<Option<RunEnd>, IngestError> {
        if self.chunks.is_empty() && self.invalid.is_empty() {
            return Ok(None);
        }
        if !self.chunks.is_empty() {
            self.ports
                .lanes
                .store_chunks(&self.chunks, self.expires_at())
                .await?;
            self.chunks.clear();
        }
        for batch in self.invalid.chunks(OUTCOMES_PER_WRITE) {
            record(
                self.ports.store,
                self.task.id,
                batch.to_vec(),
                None,
                self.settings,
            )
            .await?;
        }
        self.invalid.clear();
        #[cfg(feature = "test-support")]
        crate::failpoint::before_ingest_checkpoint();
        let next = self.checkpoint();
        let now = OffsetDateTime::now_utc();
        let Some(task) = self
            .ports
            .store
            .save_validation(self.task.id, &self.saved, &next, now)
            .await?
        else {
            return Err(IngestError::Contended);
        };
        self.saved = next;
        if task.cancel_requested_at.is_some() {
            return end_early(self.ports, self.settings, &task, next, None)
                .await
                .map(Some);
        }
        self.task = task;
        Ok(None)
    }

    /// The checkpoint after a flush: what this run wrote, and never less than the last one
    /// (a run that reads again below it shows the higher counts).
    fn checkpoint(&self) -> Validation {
        let (saved, counts) = (self.saved, self.counts);
        Validation {
            rows_read: saved.rows_read.max(counts.rows_read),
            rows_valid: saved.rows_valid.max(counts.rows_valid),
            rows_invalid: saved.rows_invalid.max(counts.rows_invalid),
            chunks_stored: saved.chunks_stored.max(counts.chunks_stored),
            invalid_recorded: saved.invalid_recorded.max(counts.invalid_recorded),
            admitted: false,
        }
    }

    async fn reject(&mut self, refusal: ErrorObject) -> Result<RunEnd, IngestError> {
        end_early(
            self.ports,
            self.settings,
            &self.task,
            self.saved,
            Some(refusal),
        )
        .await
    }

    /// The whole file is read: checks it is the file declared, then ends the validation.
    async fn finish(&mut self, end: FileEnd) -> Result<RunEnd, IngestError> {
        self.counts.rows_read = end.rows;
        if let Some(run_end) = self.flush().await? {
            return Ok(run_end);
        }
        let mismatch = if end.bytes != self.upload.content_length {
            Some("its length is not the declared content_length")
        } else if end.sha256 != self.upload.checksum_sha256 {
            Some("its SHA-256 is not the declared checksum_sha256")
        } else {
            None
        };
        if let Some(what) = mismatch {
            return self
                .reject(AppError::UploadMismatch(what).body().error)
                .await;
        }
        let counts = self.saved;
        if end.rows == 0 {
            return self.reject(AppError::EmptyBatch.body().error).await;
        }
        if counts.rows_invalid > 0 && self.upload.invalid_rows == InvalidRows::Reject {
            let refusal = ErrorObject {
                code: "invalid_rows".into(),
                message: format!(
                    "{} of {} rows are invalid; GET the task's errors for each one. Fix them \
                     and upload the file again, or upload it with invalid_rows: skip.",
                    counts.rows_invalid, end.rows
                ),
                details: vec![],
            };
            return self.reject(refusal).await;
        }
        let validation = Validation {
            rows_read: end.rows,
            ..counts
        };
        let now = OffsetDateTime::now_utc();
        let queued = ValidationEnd {
            to: TaskStatus::Queued,
            total: end.rows,
            cancelled: 0,
            not_attempted: 0,
            validation,
            rejection: None,
            expires_at: None,
        };
        if !self
            .ports
            .store
            .end_validation(self.task.id, &queued, now)
            .await?
        {
            return Ok(RunEnd::Nothing);
        }
        let mut task = self.task.clone();
        task.status = TaskStatus::Queued;
        task.total = end.rows;
        task.validation = validation;
        admit(self.ports, self.settings, &task).await?;
        forget_file(self.ports.files, task.id).await;
        tracing::info!(
            rows = end.rows,
            valid = counts.rows_valid,
            invalid = counts.rows_invalid,
            chunks = counts.chunks_stored,
            "file validated; task queued"
        );
        Ok(RunEnd::Queued)
    }
}

/// Hands a queued task's stored chunks to its owner's lanes, then marks them handed. A crash
/// between the two hands them again on the next run: each item then meets its own outcome and
/// is skipped (the cost is a second look at each chunk, never a second BOS call).
async fn admit(
    ports: IngestPorts<'_>,
    settings: &Settings,
    task: &Task,
) -> Result<(), IngestError> {
    let owner = task.owner.storage_key();
    let count = u64::from(task.validation.chunks_stored);
    if count > 0 {
        let admission = Admission {
            owner: &owner,
            task_id: task.id,
            count,
            trace: task.trace.clone(),
            lanes_per_owner: settings.lanes_per_owner,
            expires_at: OffsetDateTime::now_utc()
                + settings.retention
                + Duration::from_secs(86_400),
        };
        schedule::admit_stored(ports.lanes, ports.queue, &admission).await?;
    }
    let seen = task.validation;
    let admitted = Validation {
        admitted: true,
        ..seen
    };
    let now = OffsetDateTime::now_utc();
    ports
        .store
        .save_validation(task.id, &seen, &admitted, now)
        .await?;
    // Every row invalid and skipped: the task is complete already.
    finish_if_complete(ports.store, task.id, now, settings.retention).await?;
    crate::metrics::MetricSet::new()
        .dimension("TaskType", task.task_type.slug())
        .count("TasksCreated", 1)
        .count("ItemsSubmitted", task.total.into())
        .emit();
    Ok(())
}

/// Ends a validation early. With a `refusal` the file is `rejected`: its rows are never items
/// (`not_attempted`). Without one the task was cancelled: the rows read are `cancelled`. In
/// both, invalid rows keep their failed outcomes, so `progress` adds up.
async fn end_early(
    ports: IngestPorts<'_>,
    settings: &Settings,
    task: &Task,
    validation: Validation,
    refusal: Option<ErrorObject>,
) -> Result<RunEnd, IngestError> {
    let now = OffsetDateTime::now_utc();
    let never_items = validation.rows_read - validation.rows_invalid;
    let (to, cancelled, not_attempted) = match refusal {
        Some(_) => (TaskStatus::Rejected, 0, never_items),
        None => (TaskStatus::Cancelled, never_items, 0),
    };
    let end = ValidationEnd {
        to,
        total: validation.rows_read,
        cancelled,
        not_attempted,
        validation,
        rejection: refusal.clone(),
        expires_at: Some(now + settings.retention),
    };
    if !ports.store.end_validation(task.id, &end, now).await? {
        return Ok(RunEnd::Nothing);
    }
    forget_file(ports.files, task.id).await;
    let code = refusal.as_ref().map(|r| r.code.as_str());
    tracing::info!(
        status = to.as_str(),
        code,
        rows = validation.rows_read,
        invalid = validation.rows_invalid,
        "validation ended early"
    );
    Ok(match to {
        TaskStatus::Rejected => RunEnd::Rejected,
        _ => RunEnd::Cancelled,
    })
}

/// The file is read for good: it is deleted now rather than by the bucket's lifecycle rule, so
/// names and IBANs are kept no longer than needed.
async fn forget_file(files: &dyn FileStore, id: TaskId) {
    if let Err(e) = files.delete(&object_key(id)).await {
        tracing::warn!(task_id = %id, cause = %Chain(&e), "file not deleted; the lifecycle rule will");
    }
}

/// What the parsing thread needs of the task.
struct ParseJob {
    task_id: TaskId,
    task_type: TaskType,
    owner: String,
    trace: Option<crate::trace::Trace>,
    chunk_size: usize,
    max_rows: u32,
}

impl ParseJob {
    fn of(task: &Task, settings: &Settings) -> Self {
        Self {
            task_id: task.id,
            task_type: task.task_type,
            owner: task.owner.storage_key(),
            trace: task.trace.clone(),
            chunk_size: settings.chunk_size.clamp(1, crate::chunk::MAX_CHUNK_SIZE),
            max_rows: settings.max_file_rows,
        }
    }

    fn chunk(&self, number: u32, items: Vec<ChunkItem>) -> ChunkMessage {
        ChunkMessage {
            task_id: self.task_id,
            task_type: self.task_type,
            chunk: number,
            owner: Some(self.owner.clone()),
            trace: self.trace.clone(),
            items,
        }
    }
}

/// Reads the whole file on a blocking thread, sending chunks and invalid rows as they come.
/// Stops early when the receiver is gone.
fn parse_file(
    reader: FileReader,
    format: crate::upload::FileFormat,
    job: &ParseJob,
    tx: &mpsc::Sender<Piece>,
) {
    let send = |piece| tx.blocking_send(piece).is_ok();
    let mut rows = match FileRows::open(format, reader) {
        Ok(rows) => rows,
        Err(e) => {
            send(read_failure(e));
            return;
        }
    };
    let mut checker = RowChecker::default();
    let mut items = Vec::with_capacity(job.chunk_size);
    let mut chunk = 0;
    let mut index: u32 = 0;
    loop {
        let row = match rows.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                send(read_failure(e));
                return;
            }
        };
        if index == job.max_rows {
            send(Piece::Refused(AppError::TooManyItems {
                max: job.max_rows as usize,
            }));
            return;
        }
        let sent = match checker.check(row, index) {
            Ok(beneficiary) => {
                items.push(ChunkItem {
                    index,
                    beneficiary,
                    bos_key: None,
                });
                items.len() < job.chunk_size || {
                    let full = std::mem::replace(&mut items, Vec::with_capacity(job.chunk_size));
                    chunk += 1;
                    send(Piece::Chunk(job.chunk(chunk - 1, full)))
                }
            }
            Err(outcome) => send(Piece::Invalid(*outcome)),
        };
        if !sent {
            return;
        }
        index += 1;
    }
    if !items.is_empty() && !send(Piece::Chunk(job.chunk(chunk, items))) {
        return;
    }
    send(Piece::End(FileEnd {
        rows: index,
        bytes: rows.bytes(),
        sha256: rows.sha256_base64(),
    }));
}

fn read_failure(error: ReadError) -> Piece {
    match error {
        ReadError::Refused(e) => Piece::Refused(e),
        ReadError::Io(e) => Piece::ReadFailed(e),
    }
}

/// Validates rows as an inline batch's items are validated, `external_id`s unique included.
/// Ids are kept as 64-bit hashes (SipHash with fixed keys) with the first row that used them:
/// constant size per row, and a collision (about 1 in 36 million for a million distinct ids)
/// would refuse a row as a duplicate, never let a duplicate through.
#[derive(Default)]
struct RowChecker {
    seen: HashMap<u64, u32>,
}

impl RowChecker {
    fn check(&mut self, row: FileRow, index: u32) -> Result<Beneficiary, Box<ItemOutcome>> {
        let line = Some(row.line);
        let value = row
            .value
            .map_err(|detail| failed(index, None, detail.at(index, None).on_line(line)))?;
        let external_id = value.get("external_id").and_then(|v| v.as_str());
        let first_use = external_id.and_then(|ext| {
            let mut hasher = std::hash::DefaultHasher::new();
            ext.hash(&mut hasher);
            match self.seen.entry(hasher.finish()) {
                std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                    None
                }
            }
        });
        let beneficiary = Beneficiary::parse(&value).map_err(|errors| {
            let first = errors.into_iter().next().unwrap_or_else(|| {
                ErrorDetail::field(
                    "item",
                    "invalid_item",
                    "This row is not a valid beneficiary.",
                )
            });
            failed(
                index,
                external_id,
                first.at(index, external_id).on_line(line),
            )
        })?;
        if let Some(first) = first_use {
            let detail = ErrorDetail::field(
                "external_id",
                "duplicate_external_id",
                format!("This external_id is already used by item {first}."),
            )
            .at(index, external_id)
            .on_line(line);
            return Err(failed(index, external_id, detail));
        }
        Ok(beneficiary)
    }
}

fn failed(index: u32, external_id: Option<&str>, error: ErrorDetail) -> Box<ItemOutcome> {
    Box::new(ItemOutcome {
        index,
        external_id: external_id.map(crate::error_body::bounded),
        result: OutcomeResult::Failed { error },
        input: None,
        bos_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Owner;
    use crate::memory::{MemoryFiles, MemoryIngestQueue, MemoryLanes, MemoryQueue, MemoryStore};
    use crate::ports::OutcomeFilter;
    use crate::upload::FileFormat;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    struct World {
        store: MemoryStore,
        lanes: MemoryLanes,
        queue: MemoryQueue,
        files: MemoryFiles,
        ingest: MemoryIngestQueue,
        settings: Settings,
    }

    impl World {
        fn new() -> Self {
            Self {
                store: MemoryStore::default(),
                lanes: MemoryLanes::default(),
                queue: MemoryQueue::default(),
                files: MemoryFiles::default(),
                ingest: MemoryIngestQueue::default(),
                settings: Settings {
                    chunk_size: 10,
                    ..Settings::default()
                },
            }
        }

        fn ports(&self) -> IngestPorts<'_> {
            IngestPorts {
                store: &self.store,
                lanes: &self.lanes,
                queue: &self.queue,
                files: &self.files,
                ingest: &self.ingest,
            }
        }

        /// A validating task whose file is `data`, as declared (or with `declared` bytes).
        async fn task_of(&self, data: &[u8], invalid_rows: InvalidRows) -> TaskId {
            let mut task = Task::new(
                TaskType::BeneficiariesImport,
                Owner::from_subject("alice").unwrap(),
                0,
                OffsetDateTime::now_utc(),
            );
            task.status = TaskStatus::Validating;
            task.upload = Some(Upload {
                format: FileFormat::Csv,
                content_length: data.len() as u64,
                checksum_sha256: base64::engine::general_purpose::STANDARD
                    .encode(Sha256::digest(data)),
                invalid_rows,
                result_format: FileFormat::Csv,
            });
            self.store.insert_task(&task).await.unwrap();
            self.files.put(&object_key(task.id), data.to_vec());
            task.id
        }

        async fn run(&self, id: TaskId, run: u32, deadline: Instant) -> RunEnd {
            let message = IngestMessage::ingest(id, run);
            super::run(self.ports(), &self.settings, message, deadline)
                .await
                .unwrap()
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    /// A CSV of `n` rows; rows in `bad` have an IBAN that fails its checksum.
    fn csv(n: u32, bad: &[u32]) -> Vec<u8> {
        let mut text = String::from("name,country,currency,iban,external_id\r\n");
        for i in 0..n {
            let iban = if bad.contains(&i) {
                "DE00370400440532013000".to_owned()
            } else {
                crate::test_ibans::german(u64::from(i))
            };
            text.push_str(&format!("Row {i},DE,EUR,{iban},ext-{i}\r\n"));
        }
        text.into_bytes()
    }

    #[tokio::test]
    async fn a_valid_file_becomes_a_queued_task_whose_chunks_join_the_lanes() {
        let w = World::new();
        let id = w.task_of(&csv(95, &[]), InvalidRows::Reject).await;
        assert_eq!(w.run(id, 0, later()).await, RunEnd::Queued);
        let task = w.store.get(id).unwrap();
        assert_eq!((task.status, task.total), (TaskStatus::Queued, 95));
        assert_eq!(task.validation.rows_valid, 95);
        assert_eq!(task.validation.chunks_stored, 10);
        assert!(task.validation.admitted);
        assert_eq!(w.lanes.chunks_written(), 10);
        assert!(!w.queue.sent().is_empty(), "lanes were opened");
        assert!(
            !w.files.contains(&object_key(id)),
            "the file is deleted once read"
        );
        assert_eq!(
            w.run(id, 0, later()).await,
            RunEnd::Nothing,
            "a replay does nothing"
        );
    }

    #[tokio::test]
    async fn a_run_out_of_time_hands_on_and_the_next_stores_only_what_is_left() {
        let w = World::new();
        let id = w.task_of(&csv(95, &[3]), InvalidRows::Skip).await;
        // A deadline already inside the margin: the run writes one checkpoint and hands on.
        assert_eq!(w.run(id, 0, Instant::now()).await, RunEnd::HandedOn);
        let sent = w.ingest.sent();
        assert_eq!(sent, [IngestMessage::ingest(id, 1)]);
        let first = w.store.get(id).unwrap().validation;
        assert!(
            first.chunks_stored >= 1 || first.invalid_recorded >= 1,
            "{first:?}"
        );
        assert_eq!(w.run(id, 1, later()).await, RunEnd::Queued);
        let task = w.store.get(id).unwrap();
        assert_eq!((task.total, task.failed), (95, 1));
        assert_eq!(
            w.lanes.chunks_written(),
            10,
            "94 valid rows: 10 chunks, each once"
        );
        let (errors, _) = w
            .store
            .list_outcomes(id, OutcomeFilter::FailedOnly, None, 10)
            .await
            .unwrap();
        assert_eq!(errors.len(), 1, "the invalid row is recorded once");
        let OutcomeResult::Failed { error } = &errors[0].result else {
            panic!("{errors:?}")
        };
        assert_eq!(
            (error.code.as_str(), error.line),
            ("invalid_checksum", Some(5))
        );
    }

    #[tokio::test]
    async fn one_invalid_row_rejects_the_file_by_default_and_nothing_is_queued() {
        let w = World::new();
        let id = w.task_of(&csv(30, &[7, 20]), InvalidRows::Reject).await;
        assert_eq!(w.run(id, 0, later()).await, RunEnd::Rejected);
        let task = w.store.get(id).unwrap();
        assert_eq!(task.status, TaskStatus::Rejected);
        assert_eq!(task.rejection.as_ref().unwrap().code, "invalid_rows");
        assert_eq!((task.total, task.failed, task.not_attempted), (30, 2, 28));
        assert_eq!(task.processed(), task.total);
        assert!(w.queue.sent().is_empty(), "no lane opened");
    }

    #[tokio::test]
    async fn a_file_not_as_declared_or_malformed_or_empty_is_rejected_with_its_reason() {
        for (data, code) in [
            (b"name,country,currency,iban\r\n".to_vec(), "empty_batch"),
            (b"name,colour\r\nA,red\r\n".to_vec(), "invalid_csv_header"),
            (
                b"name,country,currency,iban\r\nA,DE,EUR\r\n".to_vec(),
                "malformed_csv",
            ),
        ] {
            let w = World::new();
            let id = w.task_of(&data, InvalidRows::Reject).await;
            assert_eq!(w.run(id, 0, later()).await, RunEnd::Rejected);
            let task = w.store.get(id).unwrap();
            assert_eq!(task.rejection.unwrap().code, code);
        }
        let w = World::new();
        let id = w.task_of(&csv(3, &[]), InvalidRows::Reject).await;
        w.files.put(&object_key(id), csv(4, &[]));
        assert_eq!(w.run(id, 0, later()).await, RunEnd::Rejected);
        assert_eq!(
            w.store.get(id).unwrap().rejection.unwrap().code,
            "upload_mismatch"
        );
    }

    #[tokio::test]
    async fn a_cancel_during_validation_ends_it_with_the_rows_read_cancelled() {
        let w = World::new();
        let id = w.task_of(&csv(20, &[]), InvalidRows::Reject).await;
        w.store
            .request_cancel(id, OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert_eq!(w.run(id, 0, later()).await, RunEnd::Cancelled);
        let task = w.store.get(id).unwrap();
        assert_eq!(task.status, TaskStatus::Cancelled);
        assert_eq!(task.processed(), task.total);
        assert!(w.queue.sent().is_empty());
    }
}
