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

use crate::chunk::{ChunkItem, ChunkMessage};
use crate::config::Settings;
use crate::error::Chain;
use crate::metrics::MetricSet;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::ports::{BeneficiaryBackend, StoreError, TaskStore};
use crate::task::{TaskStatus, TaskType};
use crate::task_types::run_item;
use crate::trace;
use crate::upstream::BackendError;
use crate::usecases::record_outcomes::record_and_finish;
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    #[error("not started: the back office keeps failing")]
    UpstreamFailing,
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
}

/// Outcome of one item attempt, with the time its BOS call took (retries included).
enum Attempt {
    Done(Box<ItemOutcome>, f64),
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
    let Some((task, done)) = store.chunk_state(msg.task_id, &msg.indexes()).await? else {
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

    if task.cancel_requested_at.is_some() {
        // Cancelled before these items started: they end `cancelled`, BOS is not called.
        let outcomes = pending
            .iter()
            .map(|i| ItemOutcome {
                index: i.index,
                external_id: i.beneficiary.external_id().map(str::to_owned),
                result: OutcomeResult::Cancelled,
                input: None,
                bos_key: None,
            })
            .collect();
        let concluded = record_and_finish(store, settings, msg, outcomes, MetricSet::new()).await?;
        return Ok(ChunkReport {
            recorded: concluded.tally.total(),
            skipped,
            finished: concluded.finished,
            ..ChunkReport::default()
        });
    }

    // A flaky BOS is normal: an item whose retries ran out is left for the message's next
    // delivery while the others go on. Several such items in a row mean BOS is down; then the
    // chunk stops starting new calls, since hammering it helps nobody.
    let breaker = Breaker::default();
    let items = ItemRun {
        run,
        task_type: task.task_type,
        msg,
        deadline: run
            .deadline
            .checked_sub(settings.deadline_reserve)
            .unwrap_or_else(Instant::now),
        breaker: &breaker,
        attempts,
    };
    let results: Vec<Attempt> = futures::stream::iter(pending)
        .map(|item| attempt(&items, item))
        .buffer_unordered(settings.bos_concurrency)
        .collect()
        .await;

    let mut outcomes = Vec::new();
    let mut latencies = Vec::new();
    let mut left = 0;
    let mut cause = None;
    for a in results {
        match a {
            Attempt::Done(o, ms) => {
                outcomes.push(*o);
                latencies.push(ms);
            }
            Attempt::Pending(why, ms) => {
                left += 1;
                cause = Some(why);
                latencies.extend(ms);
            }
        }
    }

    let metrics = MetricSet::new().millis("BosLatency", latencies);
    let concluded = record_and_finish(store, settings, msg, outcomes, metrics).await?;
    if let Some(cause) = cause {
        return Err(ChunkError::Incomplete { left, cause });
    }
    Ok(ChunkReport {
        recorded: concluded.tally.total(),
        skipped,
        finished: concluded.finished,
        ..ChunkReport::default()
    })
}

/// What every item attempt of one chunk shares.
struct ItemRun<'a> {
    run: &'a ChunkRun<'a>,
    task_type: TaskType,
    msg: &'a ChunkMessage,
    /// The invocation's deadline less the reserve for recording.
    deadline: Instant,
    breaker: &'a Breaker,
    attempts: Attempts,
}

async fn attempt(items: &ItemRun<'_>, item: &ChunkItem) -> Attempt {
    let ItemRun {
        run,
        task_type,
        msg,
        deadline,
        breaker,
        attempts,
    } = *items;
    let Ok(_permit) = run.bos_limit.acquire().await else {
        return Attempt::Pending(Deferred::NoSlot, None);
    };
    if breaker.is_open() {
        return Attempt::Pending(Deferred::UpstreamFailing, None);
    }
    if Instant::now() >= deadline {
        return Attempt::Pending(Deferred::Deadline, None);
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
            breaker.success();
            OutcomeResult::Succeeded { output }
        }
        Err(e) if e.is_permanent() || attempts == Attempts::Final => {
            if !e.is_permanent() {
                breaker.failure();
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
            breaker.failure();
            tracing::warn!(index = item.index, code = e.code(), cause = %Chain(&e), "item left for a retry");
            return Attempt::Pending(Deferred::Upstream(e), Some(ms));
        }
    };
    let failed = matches!(result, OutcomeResult::Failed { .. });
    Attempt::Done(
        Box::new(ItemOutcome {
            index: item.index,
            external_id,
            result,
            input: failed.then(|| item.beneficiary.clone()),
            bos_key: failed.then_some(key),
        }),
        ms,
    )
}

/// Counts items whose retries ran out with no success in between; open once there are
/// [`Breaker::THRESHOLD`] of them.
#[derive(Default)]
struct Breaker {
    consecutive_failures: AtomicUsize,
}

impl Breaker {
    const THRESHOLD: usize = 3;

    fn is_open(&self) -> bool {
        self.consecutive_failures.load(Ordering::Relaxed) >= Self::THRESHOLD
    }
    fn success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }
    fn failure(&self) {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{deliver, later, process, stored_task};
    use crate::memory::{MemoryBackend, MemoryStore};
    use crate::ports::OutcomeFilter;
    use crate::task::Task;
    use crate::trace::Trace;

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

    #[tokio::test]
    async fn a_backend_that_keeps_failing_stops_the_chunk() {
        let (store, _task, chunks) = setup(4).await;
        let backend = MemoryBackend::default();
        backend.set_unavailable(true);
        let s = Settings {
            bos_concurrency: 1,
            ..Settings::default()
        };
        let err = process(&store, &backend, &s, &chunks[0], later()).await;
        assert!(matches!(err, Err(ChunkError::Incomplete { left: 4, .. })));
        assert_eq!(
            backend.calls(),
            3,
            "the fourth item is not tried once three failed in a row"
        );
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
