//! The dead-letter function's work: a message that kept failing until SQS gave up on it.
//!
//! - A chunk: its lane is handed on first (if that had not happened, the caller's later
//!   chunks would wait forever), then it goes back to the work queue to be *settled*: each
//!   item still without an outcome gets one more BOS call with its own idempotency key, whose
//!   answer is final (`usecases::process_chunk`). BOS is asked, not guessed at: an item BOS
//!   created is a success, however many deliveries failed after the creation.
//! - A settle that died as well goes back for another round, up to [`SETTLE_ROUNDS`]: a
//!   consumer that crashes now and then must not turn BOS's creations into failures. After
//!   that nothing more can be learned, so its items without an outcome end
//!   `processing_failed`, and the task is finished if that was the last work it had, so no
//!   task waits forever.
//! - A lane start: its chunk was never worked on for lack of a hand-off (the store or the
//!   queue kept failing), so nothing is failed: the chunk goes back to the work queue on its
//!   own, as a chunk message.
//!
//! Replaying either changes nothing.

use crate::chunk::{ChunkMessage, WorkMessage};
use crate::config::Settings;
use crate::error_body::ErrorDetail;
use crate::metrics::MetricSet;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::ports::{LaneStore, StoreError, TaskStore, Vehicle, WorkQueue};
use crate::task::TaskStatus;
use crate::usecases::consume::{lane_records_expire, pass_lane_on};
use crate::usecases::process_chunk::ChunkError;
use crate::usecases::record_outcomes::record_and_finish;
use crate::usecases::schedule::hand_on;

pub const PROCESSING_FAILED: &str = "processing_failed";

/// Settles of one dead chunk before its items are given up as `processing_failed`.
pub const SETTLE_ROUNDS: u32 = 3;

/// What settling one dead letter did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Items marked `processing_failed`.
    pub failed: usize,
    pub finished: Option<TaskStatus>,
    /// A chunk went back to the work queue: a dead start's chunk, or a dead chunk to settle.
    pub requeued: bool,
}

pub async fn settle(
    store: &dyn TaskStore,
    lanes: &dyn LaneStore,
    queue: &dyn WorkQueue,
    settings: &Settings,
    message: &WorkMessage,
) -> Result<Settled, ChunkError> {
    match message {
        WorkMessage::Start { start } => {
            let expires_at = lane_records_expire(settings);
            let vehicle = Vehicle::of_start(start);
            // Long after its submission: the append it was sent ahead of has landed or failed.
            let Some(chunk) = hand_on(lanes, &start.owner, vehicle, true, None, expires_at).await?
            else {
                return Ok(Settled::default());
            };
            queue
                .enqueue(&[WorkMessage::Chunk(chunk)])
                .await
                .map_err(crate::usecases::schedule::ScheduleError::from)?;
            Ok(Settled {
                requeued: true,
                ..Settled::default()
            })
        }
        WorkMessage::Chunk(chunk) => {
            // A redelivery as far as the lane is concerned: repeat any hand-off it made.
            pass_lane_on(lanes, queue, settings, chunk, true).await?;
            requeue_settle(queue, chunk, 1).await
        }
        WorkMessage::Settle { settle, round } if *round < SETTLE_ROUNDS => {
            requeue_settle(queue, settle, round + 1).await
        }
        WorkMessage::Settle { settle, .. } => {
            let (failed, finished) = fail_chunk(store, settings, settle).await?;
            Ok(Settled {
                failed,
                finished,
                requeued: false,
            })
        }
    }
}

async fn requeue_settle(
    queue: &dyn WorkQueue,
    chunk: &ChunkMessage,
    round: u32,
) -> Result<Settled, ChunkError> {
    let settle = WorkMessage::Settle {
        settle: chunk.clone(),
        round,
    };
    queue
        .enqueue(&[settle])
        .await
        .map_err(crate::usecases::schedule::ScheduleError::from)?;
    Ok(Settled {
        requeued: true,
        ..Settled::default()
    })
}

#[tracing::instrument(skip_all, fields(task_id = %msg.task_id, chunk = msg.chunk))]
pub async fn fail_chunk(
    store: &dyn TaskStore,
    settings: &Settings,
    msg: &ChunkMessage,
) -> Result<(usize, Option<TaskStatus>), StoreError> {
    let Some(task) = store.get_task(msg.task_id).await? else {
        tracing::warn!("dead chunk of an unknown task dropped");
        return Ok((0, None));
    };
    let done = store.final_items(msg.task_id, &msg.indexes()).await?;
    let outcomes: Vec<ItemOutcome> = msg
        .items
        .iter()
        .filter(|i| !done.contains(&i.index))
        .map(|i| {
            let external_id = i.beneficiary.external_id().map(str::to_owned);
            let error = ErrorDetail {
                line: None,
                index: None,
                external_id: None,
                field: None,
                code: PROCESSING_FAILED.into(),
                message: "The item could not be processed after repeated attempts.".into(),
            }
            .at(i.index, external_id.as_deref());
            ItemOutcome {
                index: i.index,
                external_id,
                result: OutcomeResult::Failed { error },
                input: Some(i.beneficiary.clone()),
                bos_key: Some(msg.bos_key(i)),
            }
        })
        .collect();
    let metrics = MetricSet::new().count("DeadChunks", 1);
    let concluded = record_and_finish(store, settings, msg, task.total, outcomes, metrics).await?;
    let failed = concluded.tally.total();
    if failed > 0 {
        tracing::warn!(
            items = failed,
            "dead chunk's items marked processing_failed"
        );
    }
    let finished = concluded.finished;
    Ok((failed, finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{later, process, stored_task};
    use crate::memory::{MemoryBackend, MemoryStore};
    use crate::task::TaskType;

    #[tokio::test]
    async fn dead_chunk_fails_its_pending_items_and_finishes_the_task() {
        let store = MemoryStore::default();
        let ibans = ["DE89370400440532013000"; 6];
        let (task, chunks) = stored_task(&store, TaskType::BeneficiariesImport, &ibans, 3).await;
        let s = Settings::default();
        process(&store, &MemoryBackend::default(), &s, &chunks[0], later())
            .await
            .unwrap();

        let (failed, finished) = fail_chunk(&store, &s, &chunks[1]).await.unwrap();
        assert_eq!(
            (failed, finished),
            (3, Some(TaskStatus::CompletedWithErrors))
        );
        // A redrive of either chunk changes nothing.
        assert_eq!(fail_chunk(&store, &s, &chunks[0]).await.unwrap(), (0, None));
        assert_eq!(fail_chunk(&store, &s, &chunks[1]).await.unwrap(), (0, None));
        let t = store.get(task.id).unwrap();
        assert_eq!((t.succeeded, t.failed), (3, 3));
    }

    /// Alice's task of `n` items in chunks of 2, with the stores and queue around it.
    async fn lanes_setup(
        n: usize,
    ) -> (
        MemoryStore,
        crate::memory::MemoryLanes,
        crate::memory::MemoryQueue,
        crate::task::Task,
        Vec<ChunkMessage>,
    ) {
        let store = MemoryStore::default();
        let ibans = vec!["DE89370400440532013000"; n];
        let (task, chunks) = stored_task(&store, TaskType::BeneficiariesImport, &ibans, 2).await;
        (store, Default::default(), Default::default(), task, chunks)
    }

    #[tokio::test]
    async fn a_dead_start_sends_its_chunk_back_and_fails_nothing() {
        use crate::usecases::schedule::admit;
        let (store, lanes, queue, task, chunks) = lanes_setup(4).await;
        let owner = task.owner.storage_key();
        let s = Settings::default();
        admit(
            &lanes,
            &queue,
            &owner,
            task.id,
            &chunks,
            1,
            lane_records_expire(&s),
        )
        .await
        .unwrap();
        let start = queue.pop().unwrap();

        let settled = settle(&store, &lanes, &queue, &s, &start).await.unwrap();

        assert!(settled.requeued);
        assert_eq!(settled.failed, 0);
        assert!(matches!(queue.pop(), Some(WorkMessage::Chunk(c)) if c.chunk == 0));
        assert_eq!(store.get(task.id).unwrap().processed(), 0);
    }

    #[tokio::test]
    async fn a_dead_chunk_is_settled_in_rounds_before_anything_is_failed() {
        let (store, lanes, queue, task, chunks) = lanes_setup(2).await;
        let s = Settings::default();

        // A dead chunk, then each of its settles dying in turn
        let mut message = WorkMessage::Chunk(chunks[0].clone());
        for round in 1..=SETTLE_ROUNDS {
            let settled = settle(&store, &lanes, &queue, &s, &message).await.unwrap();
            assert!(settled.requeued);
            assert_eq!(
                store.get(task.id).unwrap().processed(),
                0,
                "nothing failed yet"
            );
            message = queue.pop().unwrap();
            assert!(matches!(&message, WorkMessage::Settle { round: r, .. } if *r == round));
        }
        // Only the last round's death gives the items up
        let settled = settle(&store, &lanes, &queue, &s, &message).await.unwrap();
        assert_eq!((settled.failed, settled.requeued), (2, false));
    }
}
