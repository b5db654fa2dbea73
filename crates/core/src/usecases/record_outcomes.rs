//! The tail that chunk processing and dead letters share: write a chunk's new outcomes with
//! the task's counters, count them in the metrics, and move the task to its final state if
//! they were its last. Whoever records the last outcome finishes the task; the conditional
//! transition lets exactly one caller win.

use crate::chunk::ChunkMessage;
use crate::config::Settings;
use crate::metrics::MetricSet;
use crate::outcome::{ItemOutcome, Tally};
use crate::ports::{Recorded, StoreError, TaskStore};
use crate::task::{TaskId, TaskStatus};
use std::time::Duration;
use time::OffsetDateTime;

/// What one [`record_and_finish`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Concluded {
    /// The outcomes this call wrote (others had been written by a racing delivery).
    pub tally: Tally,
    /// The task's final state, if this call finished it.
    pub finished: Option<TaskStatus>,
}

/// Records `outcomes` of `msg`'s items, emits `metrics` with the item counts added, and
/// finishes the task if nothing is left. `total` is the task's item count: with it, only the
/// write that completes the task pays the read that checks (one read a chunk fewer).
pub async fn record_and_finish(
    store: &dyn TaskStore,
    settings: &Settings,
    msg: &ChunkMessage,
    total: u32,
    outcomes: Vec<ItemOutcome>,
    metrics: MetricSet,
) -> Result<Concluded, StoreError> {
    let wrote = record(store, msg.task_id, outcomes, Some(total), settings).await?;
    let tally = wrote.tally;
    metrics
        .dimension("TaskType", msg.task_type.slug())
        .count("ItemsSucceeded", tally.succeeded.into())
        .count("ItemsFailed", tally.failed.into())
        .count("ItemsCancelled", tally.cancelled.into())
        .count("ItemsNotAttempted", tally.not_attempted.into())
        .emit();
    let finished = if wrote.may_complete {
        let now = OffsetDateTime::now_utc();
        finish_if_complete(store, msg.task_id, now, settings.retention).await?
    } else {
        None
    };
    Ok(Concluded { tally, finished })
}

/// What [`record`] wrote.
pub(crate) struct Wrote {
    pub(crate) tally: Tally,
    /// False when the store said items of the task are still without an outcome.
    pub(crate) may_complete: bool,
}

/// Records outcomes; when another consumer recorded some of these items first, drops those
/// and tries again with the rest. `total` as in [`TaskStore::record_outcomes`].
pub(crate) async fn record(
    store: &dyn TaskStore,
    task_id: TaskId,
    mut outcomes: Vec<ItemOutcome>,
    total: Option<u32>,
    settings: &Settings,
) -> Result<Wrote, StoreError> {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        if outcomes.is_empty() {
            // Others wrote them all; whether they completed the task is for a read to say.
            return Ok(Wrote {
                tally: Tally::default(),
                may_complete: true,
            });
        }
        let now = OffsetDateTime::now_utc();
        // Outcomes outlive their task by up to a day: they are only read through a task that
        // is itself unexpired, and the task's retention starts later, when it finishes.
        let expires_at = now + settings.retention + Duration::from_secs(86_400);
        match store
            .record_outcomes(task_id, &outcomes, total, now, expires_at)
            .await?
        {
            Recorded::All { may_complete } => {
                return Ok(Wrote {
                    tally: Tally::of(&outcomes),
                    may_complete,
                })
            }
            Recorded::Conflict => {
                let indexes: Vec<u32> = outcomes.iter().map(|o| o.index).collect();
                let done = store.final_items(task_id, &indexes).await?;
                outcomes.retain(|o| !done.contains(&o.index));
            }
        }
    }
    Err(StoreError::transient(
        "outcomes kept conflicting with other writers",
    ))
}

pub async fn finish_if_complete(
    store: &dyn TaskStore,
    id: TaskId,
    now: OffsetDateTime,
    retention: Duration,
) -> Result<Option<TaskStatus>, StoreError> {
    let Some(task) = store.get_task(id).await? else {
        return Ok(None);
    };
    let Some(next) = task.completion_status() else {
        return Ok(None);
    };
    let won = store
        .transition(id, task.status, next, now, Some(now + retention))
        .await?;
    if won {
        let duration = (now - task.created_at).as_seconds_f64() * 1e3;
        MetricSet::new()
            .dimension("TaskType", task.task_type.slug())
            .dimension("Status", next.as_str())
            .count("TasksFinished", 1)
            .millis("TaskDuration", vec![duration])
            .emit();
        let reason = (next == TaskStatus::Failed && task.is_stopping())
            .then_some("tolerated_failures_exceeded");
        tracing::info!(task_id = %id, status = next.as_str(), total = task.total,
            succeeded = task.succeeded, failed = task.failed, not_attempted = task.not_attempted,
            reason, "task finished");
    }
    Ok(won.then_some(next))
}
