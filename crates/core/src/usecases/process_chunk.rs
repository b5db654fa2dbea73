//! The consumer's work on one chunk message. Safe to run any number of times for the same
//! chunk, concurrently or not:
//! - items that already have an outcome are skipped (redelivery, DLQ redrive);
//! - each BOS call carries the idempotency key `{task_id}:{index}`, so a crash between the
//!   call and the write replays BOS's first answer instead of creating twice;
//! - outcomes and counters are written in one atomic step that refuses items already final.
//!
//! Anything left undone (BOS still failing after retries, the deadline near) makes the whole
//! message fail, so SQS redelivers it and, after `maxReceiveCount`, dead-letters it. A dead
//! chunk comes back once more to *settle* ([`Attempts::Final`]): every item still pending gets
//! one more BOS call with its own idempotency key, and whatever BOS answers then is the item's
//! outcome. A replayed creation is a success; an upstream still failing is the item's error
//! (`upstream_unavailable`, `upstream_timeout`, `upstream_error`), never a guess.

use crate::breaker::CallGate;
use crate::chunk::{ChunkItem, ChunkMessage};
use crate::config::Settings;
use crate::error::Chain;
use crate::metrics::MetricSet;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::ports::{BeneficiaryBackend, ChunkState, StoreError, TaskStore};
use crate::task::{TaskStatus, TaskType};
use crate::task_types::run_item;
use crate::trace;
use crate::upstream::BackendError;
use crate::usecases::record_outcomes::record_and_finish;
use crate::usecases::upstream_wait::{Ready, Upstream};
use futures::StreamExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkReport {
    /// Items that got their outcome in this run.
    pub recorded: usize,
    /// Items that already had one.
    pub skipped: usize,
    pub finished: Option<TaskStatus>,
    /// The task whose chunk this was (a lane start works on whichever chunk is next), for the
    /// caller's log line.
    pub task_id: Option<crate::task::TaskId>,
}

/// Why the message must be redelivered. Every variant means "retry may help"; a chunk that
/// keeps failing ends in the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Some items were left for the next delivery; `cause` is why the last of them was.
    #[error("{left} item(s) not processed")]
    Incomplete {
        left: usize,
        #[source]
        cause: Deferred,
    },
    #[error("the task store failed")]
    Store(#[from] StoreError),
    #[error("could not hand the lane on")]
    Schedule(#[from] crate::usecases::schedule::ScheduleError),
}

/// Why an item was left pending for the message's next delivery.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Deferred {
    #[error("no BOS call slot")]
    NoSlot,
    /// Held by the breaker in front of BOS until the invocation's time ran out: the message
    /// goes back as a new one (`consume`), spending nothing.
    #[error("held: the back office is failing and its breaker is open")]
    UpstreamDown,
    #[error("not started before the deadline")]
    Deadline,
    /// The back office's answer was not final for the item.
    #[error("the back office's answer may change on a retry")]
    Upstream(#[source] BackendError),
}

/// Whether a failing upstream leaves an item for the message's next delivery, or is the
/// item's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// A normal delivery: transient failures leave the item pending.
    Retryable,
    /// Settling a dead chunk: this call's answer is final.
    Final,
}

/// Why a task's items that have not started will not start: what they end as instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unstarted {
    /// The task passed its tolerated failures: `not_attempted`, BOS is not called.
    Stopping,
    /// The caller cancelled it: `cancelled`, BOS is not called.
    Cancelled,
}

impl Unstarted {
    fn of(task: &crate::task::Task) -> Option<Self> {
        if task.is_stopping() {
            Some(Self::Stopping)
        } else if task.cancel_requested_at.is_some() {
            Some(Self::Cancelled)
        } else {
            None
        }
    }

    fn outcome(self, msg: &ChunkMessage, item: &ChunkItem) -> ItemOutcome {
        let external_id = item.beneficiary.external_id().map(str::to_owned);
        match self {
            Self::Cancelled => ItemOutcome {
                index: item.index,
                external_id,
                result: OutcomeResult::Cancelled,
                input: None,
                bos_key: None,
            },
            // Kept whole, with the key an earlier, crashed delivery may have sent, so that a
            // retry (`?include=all_failed`) can send it and BOS replays rather than creates.
            Self::Stopping => ItemOutcome {
                index: item.index,
                external_id,
                result: OutcomeResult::NotAttempted,
                input: Some(item.beneficiary.clone()),
                bos_key: Some(msg.bos_key(item)),
            },
        }
    }
}

/// What the chunks of one invocation share.
pub struct ChunkRun<'a> {
    pub store: &'a dyn TaskStore,
    pub backend: &'a dyn BeneficiaryBackend,
    pub settings: &'a Settings,
    /// Every BOS call holds a permit: a consumer shares one limit among the chunks it handles
    /// at once, so BOS sees at most that many calls per consumer.
    pub bos_limit: &'a Semaphore,
    /// The invocation's deadline; no BOS call starts within `settings.deadline_reserve` of it.
    pub deadline: Instant,
    /// The breaker in front of BOS, shared with the backend's client.
    pub upstream: Upstream<'a>,
}

/// Outcome of one item attempt, with the time its BOS call took (retries included), if BOS
/// was called.
enum Attempt {
    Done(Box<ItemOutcome>, Option<f64>),
    /// Transient failure or no time left: the item stays pending.
    Pending(Deferred, Option<f64>),
}

/// Processes one chunk: skips what is final, calls BOS for the rest, records the outcomes and
/// finishes the task if they were its last.
///
/// The chunk runs in its task's trace: a lane start works on whichever chunk of its owner is
/// next, maybe another task's, and that chunk's BOS calls belong to the request that created
/// it. A chunk without a trace (sent before traces existed) keeps the message's.
#[tracing::instrument(name = "process_chunk", skip_all, fields(task_id = %msg.task_id, chunk = msg.chunk,
    trace_id = tracing::field::Empty, owner = tracing::field::Empty))]
pub async fn process_chunk(
    run: &ChunkRun<'_>,
    msg: &ChunkMessage,
    attempts: Attempts,
) -> Result<ChunkReport, ChunkError> {
    let trace = msg.trace.clone().or_else(trace::current);
    if let Some(t) = &trace {
        tracing::Span::current().record("trace_id", t.trace_id());
    }
    let report = trace::within(trace, process_in_trace(run, msg, attempts)).await?;
    Ok(ChunkReport {
        task_id: Some(msg.task_id),
        ..report
    })
}

async fn process_in_trace(
    run: &ChunkRun<'_>,
    msg: &ChunkMessage,
    attempts: Attempts,
) -> Result<ChunkReport, ChunkError> {
    let ChunkRun {
        store, settings, ..
    } = *run;
    let Some(ChunkState {
        task,
        done,
        breaker,
    }) = store.chunk_state(msg.task_id, &msg.indexes()).await?
    else {
        // The task was removed because its enqueue failed, or it expired: nothing to do.
        tracing::warn!("chunk of an unknown task dropped");
        return Ok(ChunkReport::default());
    };
    tracing::Span::current().record("owner", task.owner.log_id());
    if task.status.is_final() {
        return Ok(ChunkReport {
            skipped: msg.items.len(),
            ..ChunkReport::default()
        });
    }
    if task.status == TaskStatus::Queued {
        store
            .transition(
                task.id,
                TaskStatus::Queued,
                TaskStatus::Running,
                OffsetDateTime::now_utc(),
                None,
            )
            .await?;
    }

    let pending: Vec<&ChunkItem> = msg
        .items
        .iter()
        .filter(|i| !done.contains(&i.index))
        .collect();
    let skipped = msg.items.len() - pending.len();

    if let Some(unstarted) = Unstarted::of(&task) {
        let outcomes = pending.iter().map(|i| unstarted.outcome(msg, i)).collect();
        let concluded =
            record_and_finish(store, settings, msg, task.total, outcomes, MetricSet::new()).await?;
        return Ok(ChunkReport {
            recorded: concluded.tally.total(),
            skipped,
            finished: concluded.finished,
            ..ChunkReport::default()
        });
    }

    // Items run until each has an outcome, or the breaker in front of BOS holds them: then
    // the chunk waits in place (its message is neither failed nor spent), probes when its
    // turn comes, and goes on when BOS answers again.
    let until = run
        .deadline
        .checked_sub(settings.deadline_reserve)
        .unwrap_or_else(Instant::now);
    let failures = AtomicU32::new(0);
    let may_fail = task
        .tolerance
        .allowed(task.total)
        .map(|allowed| allowed.saturating_sub(task.failed));
    // A message held before it started may have said so already (`consume`).
    let mut waiting = WaitMark::new(store, task.id, task.waiting_since.is_some());
    let mut left = pending;
    let mut report = ChunkReport {
        skipped,
        ..ChunkReport::default()
    };
    // The first round starts from the breaker as read with the task; later rounds read it.
    let mut breaker_read = breaker;
    loop {
        if run.upstream.breaker.is_open() {
            waiting.set(true).await?;
        }
        let ready = run.upstream.ready(until, breaker_read.take()).await?;
        let batch = match ready {
            Ready::Call => {
                waiting.set(false).await?;
                left.clone()
            }
            Ready::Probe => left[..1].to_vec(),
            Ready::Release => {
                return Err(ChunkError::Incomplete {
                    left: left.len(),
                    cause: Deferred::UpstreamDown,
                })
            }
        };
        let items = ItemRun {
            run,
            task_type: task.task_type,
            msg,
            deadline: until,
            attempts,
            may_fail,
            failures: &failures,
        };
        let results: Vec<(u32, Attempt)> = futures::stream::iter(batch)
            .map(|item| async { (item.index, attempt(&items, item).await) })
            .buffer_unordered(settings.bos_concurrency)
            .collect()
            .await;
        if ready == Ready::Probe {
            run.upstream.conclude_probe().await?;
        }

        let mut outcomes = Vec::new();
        let mut latencies = Vec::new();
        let mut held = std::collections::HashSet::new();
        let mut cause = None;
        for (index, a) in results {
            match a {
                Attempt::Done(o, ms) => {
                    outcomes.push(*o);
                    latencies.extend(ms);
                }
                Attempt::Pending(why, ms) => {
                    latencies.extend(ms);
                    // Items that failed on the way into an outage wait with the rest.
                    match why {
                        Deferred::UpstreamDown => {
                            held.insert(index);
                        }
                        Deferred::Upstream(_) if run.upstream.breaker.is_open() => {
                            held.insert(index);
                        }
                        other => cause = Some(other),
                    }
                }
            }
        }
        let done: std::collections::HashSet<u32> = outcomes.iter().map(|o| o.index).collect();
        let metrics = MetricSet::new().millis("BosLatency", latencies);
        let concluded =
            record_and_finish(store, settings, msg, task.total, outcomes, metrics).await?;
        report.recorded += concluded.tally.total();
        report.finished = report.finished.or(concluded.finished);
        left.retain(|i| !done.contains(&i.index));
        if let Some(cause) = cause {
            return Err(ChunkError::Incomplete {
                left: left.len(),
                cause,
            });
        }
        if left.is_empty() {
            return Ok(report);
        }
        // What is left was held by the breaker: wait for it, and go on.
        debug_assert!(left
            .iter()
            .all(|i| held.contains(&i.index) || ready == Ready::Probe));
    }
}

/// Keeps the task's `waiting_for_upstream` true while this chunk waits on the breaker,
/// writing only when that changes.
struct WaitMark<'a> {
    store: &'a dyn TaskStore,
    task: crate::task::TaskId,
    set: bool,
}

impl<'a> WaitMark<'a> {
    fn new(store: &'a dyn TaskStore, task: crate::task::TaskId, set: bool) -> Self {
        Self { store, task, set }
    }

    async fn set(&mut self, waiting: bool) -> Result<(), StoreError> {
        if waiting != self.set {
            let since = waiting.then(OffsetDateTime::now_utc);
            self.store.set_waiting(self.task, since).await?;
            self.set = waiting;
        }
        Ok(())
    }
}

/// What every item attempt of one chunk shares.
struct ItemRun<'a> {
    run: &'a ChunkRun<'a>,
    task_type: TaskType,
    msg: &'a ChunkMessage,
    /// The invocation's deadline less the reserve for recording.
    deadline: Instant,
    attempts: Attempts,
    /// How many more items may fail before the task passes its tolerance (no limit: `None`).
    may_fail: Option<u32>,
    /// Items of this chunk that failed so far.
    failures: &'a AtomicU32,
}

async fn attempt(items: &ItemRun<'_>, item: &ChunkItem) -> Attempt {
    let ItemRun {
        run,
        task_type,
        msg,
        deadline,
        attempts,
        may_fail,
        failures,
    } = *items;
    let Ok(_permit) = run.bos_limit.acquire().await else {
        return Attempt::Pending(Deferred::NoSlot, None);
    };
    if Instant::now() >= deadline {
        return Attempt::Pending(Deferred::Deadline, None);
    }
    // The chunk's own failures count at once: past the tolerance, no further item of it
    // starts, whatever the task's record says yet.
    if may_fail.is_some_and(|m| failures.load(Ordering::Relaxed) > m) {
        return Attempt::Done(Box::new(Unstarted::Stopping.outcome(msg, item)), None);
    }
    // The gate answers from memory; the BOS client asks it again before each retry and tells
    // it every answer.
    if !run.upstream.breaker.admit() {
        return Attempt::Pending(Deferred::UpstreamDown, None);
    }
    let key = msg.bos_key(item);
    let external_id = item.beneficiary.external_id().map(str::to_owned);
    let started = Instant::now();
    let answer = run_item(task_type, run.backend, &item.beneficiary, &key, deadline).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let result = match answer {
        Ok(output) => {
            #[cfg(feature = "test-support")]
            crate::failpoint::after_bos_call();
            OutcomeResult::Succeeded { output }
        }
        // BOS is failing for everyone: the item waits with the rest, its budget untouched.
        Err(e) if !e.is_permanent() && run.upstream.breaker.is_open() => {
            tracing::info!(
                index = item.index,
                code = e.code(),
                "item held: bos breaker open"
            );
            // Tell the other consumers now, not when this round ends; a failure here is
            // retried at the round's next look at the breaker.
            if let Err(error) = run.upstream.publish().await {
                tracing::warn!(cause = %Chain(&error), "could not publish the breaker's opening");
            }
            return Attempt::Pending(Deferred::UpstreamDown, Some(ms));
        }
        Err(e) if e.is_permanent() || attempts == Attempts::Final => {
            if !e.is_permanent() {
                tracing::warn!(
                    index = item.index,
                    code = e.code(),
                    cause = %Chain(&e),
                    "item settled as failed upstream"
                );
            }
            OutcomeResult::Failed {
                error: e.item_error().at(item.index, external_id.as_deref()),
            }
        }
        Err(e) => {
            tracing::warn!(index = item.index, code = e.code(), cause = %Chain(&e), "item left for a retry");
            return Attempt::Pending(Deferred::Upstream(e), Some(ms));
        }
    };
    let failed = matches!(result, OutcomeResult::Failed { .. });
    if failed {
        failures.fetch_add(1, Ordering::Relaxed);
    }
    Attempt::Done(
        Box::new(ItemOutcome {
            index: item.index,
            external_id,
            result,
            input: failed.then(|| item.beneficiary.clone()),
            bos_key: failed.then_some(key),
        }),
        Some(ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Breaker;
    use crate::fixtures::{deliver, deliver_in, later, process, stored_task};
    use crate::memory::{MemoryBackend, MemoryStore};
    use crate::ports::BreakerStore;
    use crate::ports::OutcomeFilter;
    use crate::task::Task;
    use crate::trace::Trace;
    use std::sync::Arc;
    use std::time::Duration;

    async fn setup(n: usize) -> (MemoryStore, Task, Vec<ChunkMessage>) {
        let store = MemoryStore::default();
        let ibans = vec!["DE89370400440532013000"; n];
        let (task, chunks) = stored_task(&store, TaskType::BeneficiariesImport, &ibans, 4).await;
        (store, task, chunks)
    }

    #[tokio::test]
    async fn processes_every_chunk_and_finishes_once() {
        let (store, task, chunks) = (setup(10)).await;
        let backend = MemoryBackend::default();
        let mut finished = vec![];
        for c in &chunks {
            let r = process(&store, &backend, &Settings::default(), c, later())
                .await
                .unwrap();
            finished.extend(r.finished);
        }
        assert_eq!(finished, vec![TaskStatus::Completed]);
        let t = store.get(task.id).unwrap();
        assert_eq!(
            (t.succeeded, t.failed, t.status),
            (10, 0, TaskStatus::Completed)
        );
        assert_eq!(backend.creations(), 10);
    }

    #[tokio::test]
    async fn a_chunk_runs_in_its_own_tasks_trace_whatever_message_brought_it() {
        // Given a message in one trace (a lane start from another task's submission) that
        // works on a chunk carrying its own task's trace, and a chunk carrying none
        let (store, _, mut chunks) = setup(8).await;
        let (message, own) = (Trace::new_root(), Trace::new_root());
        chunks[0].trace = Some(own.clone());
        let backend = MemoryBackend::default();
        let s = Settings::default();
        let (first, second) = (chunks[0].clone(), chunks[1].clone());
        trace::within(Some(message.clone()), async {
            process(&store, &backend, &s, &first, later())
                .await
                .unwrap();
            process(&store, &backend, &s, &second, later())
                .await
                .unwrap();
        })
        .await;

        // Then the first chunk's BOS calls are spans of its own trace, the second's of the
        // message's
        let ids = backend.trace_ids();
        let (calls_of_first, rest) = ids.split_at(first.items.len());
        assert!(
            calls_of_first.iter().all(|t| *t == Some(own.trace_id())),
            "{ids:?}"
        );
        assert!(!rest.is_empty());
        assert!(
            rest.iter().all(|t| *t == Some(message.trace_id())),
            "{ids:?}"
        );
    }

    #[tokio::test]
    async fn redelivery_skips_final_items_and_creates_nothing_twice() {
        let (store, task, chunks) = setup(4).await;
        let backend = MemoryBackend::default();
        let s = Settings::default();
        process(&store, &backend, &s, &chunks[0], later())
            .await
            .unwrap();
        let again = process(&store, &backend, &s, &chunks[0], later())
            .await
            .unwrap();
        assert_eq!((again.recorded, again.skipped), (0, 4));
        assert_eq!(backend.creations(), 4);
        assert_eq!(store.get(task.id).unwrap().succeeded, 4);
    }

    #[tokio::test]
    async fn rejections_become_item_errors() {
        let (store, task, chunks) = setup(3).await;
        let backend = MemoryBackend::default();
        backend.reject_iban("DE89370400440532013000");
        process(&store, &backend, &Settings::default(), &chunks[0], later())
            .await
            .unwrap();
        let t = store.get(task.id).unwrap();
        assert_eq!((t.failed, t.status), (3, TaskStatus::CompletedWithErrors));
        let (errors, _) = store
            .list_outcomes(task.id, OutcomeFilter::FailedOnly, None, 10)
            .await
            .unwrap();
        assert!(
            matches!(&errors[0].result, OutcomeResult::Failed { error } if error.code == "duplicate_beneficiary")
        );
    }

    #[tokio::test]
    async fn transient_failure_fails_the_message_and_keeps_items_pending() {
        let (store, task, chunks) = setup(4).await;
        let backend = MemoryBackend::default();
        backend.set_unavailable(true);
        let err = process(&store, &backend, &Settings::default(), &chunks[0], later()).await;
        assert!(matches!(err, Err(ChunkError::Incomplete { left: 4, .. })));
        assert_eq!(store.get(task.id).unwrap().processed(), 0);
        backend.set_unavailable(false);
        process(&store, &backend, &Settings::default(), &chunks[0], later())
            .await
            .unwrap();
        assert_eq!(store.get(task.id).unwrap().status, TaskStatus::Completed);
    }

    #[tokio::test]
    async fn one_failing_item_does_not_hold_back_the_others() {
        let store = MemoryStore::default();
        let ibans = [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "NL91ABNA0417164300",
            "BE68539007547034",
        ];
        let (task, chunks) = stored_task(&store, TaskType::BeneficiariesImport, &ibans, 4).await;
        let backend = MemoryBackend::default();
        backend.fail_iban_transiently("NL91ABNA0417164300");
        let s = Settings {
            bos_concurrency: 1,
            ..Settings::default()
        };

        let err = process(&store, &backend, &s, &chunks[0], later()).await;

        assert!(
            matches!(err, Err(ChunkError::Incomplete { left: 1, .. })),
            "{err:?}"
        );
        assert_eq!(store.get(task.id).unwrap().succeeded, 3);
    }

    /// A 40-item chunk, BOS down, and a consumer process whose breaker BOS's client tells.
    async fn outage() -> (MemoryStore, Task, ChunkMessage, MemoryBackend, Arc<Breaker>) {
        let store = MemoryStore::default();
        let ibans = vec!["DE89370400440532013000"; 40];
        let (task, mut chunks) =
            stored_task(&store, TaskType::BeneficiariesImport, &ibans, 40).await;
        let backend = MemoryBackend::default();
        backend.set_unavailable(true);
        let breaker = Arc::new(Breaker::default());
        backend.set_gate(breaker.clone());
        (store, task, chunks.remove(0), backend, breaker)
    }

    fn one_at_a_time() -> Settings {
        Settings {
            bos_concurrency: 1,
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn an_outage_holds_the_chunk_without_failing_an_item() {
        // Given BOS down under a 40-item chunk, and an invocation with half a second to spare
        let (store, task, chunk, backend, breaker) = outage().await;
        let s = one_at_a_time();
        let deadline = Instant::now() + s.deadline_reserve + Duration::from_millis(500);

        // When the chunk is processed
        let err = deliver_in(
            &store,
            &backend,
            &s,
            &chunk,
            deadline,
            Attempts::Retryable,
            &breaker,
        )
        .await;

        // Then BOS saw the calls that opened the breaker and no more, nothing failed, the chunk
        // is handed back as held, and the task says it waits
        assert!(
            matches!(
                err,
                Err(ChunkError::Incomplete {
                    left: 40,
                    cause: Deferred::UpstreamDown
                })
            ),
            "{err:?}"
        );
        assert_eq!(backend.calls(), crate::breaker::TRIP_FAILURES);
        assert!(store.read_breaker().await.unwrap().open);
        let t = store.get(task.id).unwrap();
        assert_eq!(t.processed(), 0);
        assert!(t.view().progress.waiting_for_upstream);
    }

    #[tokio::test]
    async fn after_an_outage_one_probe_resumes_the_chunk() {
        // Given BOS down under a 40-item chunk, back within a second
        let (store, task, chunk, backend, breaker) = outage().await;
        let backend = Arc::new(backend);
        let recovers = {
            let backend = backend.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                backend.set_unavailable(false);
            })
        };

        // When the chunk is processed with time to wait
        let r = deliver_in(
            &store,
            &*backend,
            &one_at_a_time(),
            &chunk,
            later(),
            Attempts::Retryable,
            &breaker,
        )
        .await
        .unwrap();
        recovers.await.unwrap();

        // Then it waited for the probe (one call), then made one call per item left, and
        // every item succeeded, once
        assert_eq!(r.finished, Some(TaskStatus::Completed));
        assert_eq!(backend.calls(), crate::breaker::TRIP_FAILURES + 40);
        assert_eq!(backend.creations(), 40);
        assert!(!store.read_breaker().await.unwrap().open);
        let t = store.get(task.id).unwrap();
        assert_eq!(t.succeeded, 40);
        assert!(t.waiting_since.is_none(), "no longer waiting");
    }

    #[tokio::test]
    async fn nothing_starts_past_the_deadline() {
        let (store, _task, chunks) = setup(4).await;
        let backend = MemoryBackend::default();
        let err = process(
            &store,
            &backend,
            &Settings::default(),
            &chunks[0],
            Instant::now(),
        )
        .await;
        assert!(matches!(err, Err(ChunkError::Incomplete { left: 4, .. })));
        assert_eq!(backend.creations(), 0);
    }

    #[tokio::test]
    async fn cancelled_task_records_pending_items_cancelled_without_calling_bos() {
        let (store, task, chunks) = setup(8).await;
        let backend = MemoryBackend::default();
        let s = Settings::default();
        process(&store, &backend, &s, &chunks[0], later())
            .await
            .unwrap();
        store
            .request_cancel(task.id, OffsetDateTime::now_utc())
            .await
            .unwrap();
        let r = process(&store, &backend, &s, &chunks[1], later())
            .await
            .unwrap();
        assert_eq!(r.finished, Some(TaskStatus::Cancelled));
        let t = store.get(task.id).unwrap();
        assert_eq!((t.succeeded, t.cancelled), (4, 4));
        assert_eq!(backend.creations(), 4);
    }

    #[tokio::test]
    async fn a_task_past_its_tolerated_failures_sends_no_further_item() {
        // Given a 12-item task in chunks of 4 that tolerates 2 failed items, BOS refusing all
        let (store, task, chunks) = setup(12).await;
        let mut tolerant = store.get(task.id).unwrap();
        tolerant.tolerance = crate::tolerance::Tolerance {
            percent: None,
            count: Some(2),
        };
        store.insert_task(&tolerant).await.unwrap();
        let backend = MemoryBackend::default();
        backend.reject_iban("DE89370400440532013000");
        let s = Settings {
            bos_concurrency: 1,
            ..Settings::default()
        };

        // When every chunk is processed
        let mut finished = vec![];
        for c in &chunks {
            finished.extend(
                process(&store, &backend, &s, c, later())
                    .await
                    .unwrap()
                    .finished,
            );
        }

        // Then BOS saw the 3 items it took to pass the limit, the rest were not attempted,
        // the counters add up and the task failed
        assert_eq!(backend.calls(), 3);
        let t = store.get(task.id).unwrap();
        assert_eq!((t.failed, t.not_attempted, t.processed()), (3, 9, 12));
        assert_eq!(finished, vec![TaskStatus::Failed]);
        let (all, _) = store
            .list_outcomes(task.id, OutcomeFilter::FailedOrNotAttempted, None, 20)
            .await
            .unwrap();
        let unsent = all
            .iter()
            .filter(|o| o.result == OutcomeResult::NotAttempted)
            .collect::<Vec<_>>();
        assert_eq!(unsent.len(), 9);
        assert!(unsent
            .iter()
            .all(|o| o.input.is_some() && o.bos_key.is_some()));
    }

    #[tokio::test]
    async fn validation_tasks_check_without_creating() {
        let store = MemoryStore::default();
        let ibans = ["DE89370400440532013000", "GB82WEST12345698765432"];
        let (task, chunks) =
            stored_task(&store, TaskType::BeneficiariesValidation, &ibans, 10).await;
        let backend = MemoryBackend::default();
        backend.reject_iban("GB82WEST12345698765432");
        let r = process(&store, &backend, &Settings::default(), &chunks[0], later())
            .await
            .unwrap();
        assert_eq!(r.finished, Some(TaskStatus::CompletedWithErrors));
        assert_eq!((backend.creations(), backend.validations()), (0, 1));
        let (all, _) = store
            .list_outcomes(task.id, OutcomeFilter::All, None, 10)
            .await
            .unwrap();
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"index": 0, "status": "succeeded", "verdict": {"valid": true}})
        );
    }

    async fn settle(
        store: &MemoryStore,
        backend: &MemoryBackend,
        chunk: &ChunkMessage,
    ) -> ChunkReport {
        let s = Settings::default();
        deliver(store, backend, &s, chunk, later(), Attempts::Final)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn settling_asks_bos_and_records_a_creation_that_happened_as_a_success() {
        // Given a chunk whose first item BOS created before every delivery crashed
        let (store, task, chunks) = setup(2).await;
        let backend = MemoryBackend::default();
        let key = format!("{}:{}", task.id, chunks[0].items[0].index);
        backend
            .create(&chunks[0].items[0].beneficiary, &key, later())
            .await
            .unwrap();

        // When the dead chunk is settled
        let r = settle(&store, &backend, &chunks[0]).await;

        // Then both items succeeded, the first by BOS replaying its creation
        assert_eq!(r.finished, Some(TaskStatus::Completed));
        assert_eq!(store.get(task.id).unwrap().succeeded, 2);
        assert_eq!(backend.creations(), 2);
    }

    #[tokio::test]
    async fn settling_while_bos_still_fails_names_the_upstream_cause() {
        let (store, task, chunks) = setup(2).await;
        let backend = MemoryBackend::default();
        backend.set_unavailable(true);

        let r = settle(&store, &backend, &chunks[0]).await;

        assert_eq!(r.finished, Some(TaskStatus::CompletedWithErrors));
        let (errors, _) = store
            .list_outcomes(task.id, OutcomeFilter::FailedOnly, None, 10)
            .await
            .unwrap();
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|o| matches!(&o.result,
            OutcomeResult::Failed { error } if error.code == "upstream_unavailable")));
    }

    #[tokio::test]
    async fn chunks_of_unknown_tasks_are_dropped() {
        let (_store, _task, chunks) = setup(1).await;
        let empty = MemoryStore::default();
        let r = process(
            &empty,
            &MemoryBackend::default(),
            &Settings::default(),
            &chunks[0],
            later(),
        )
        .await;
        assert_eq!(
            r.unwrap(),
            ChunkReport {
                task_id: Some(chunks[0].task_id),
                ..ChunkReport::default()
            },
            "nothing recorded, nothing skipped"
        );
    }
}
