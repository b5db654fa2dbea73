//! What the consumer does with one work-queue message: hand the message's lane on *while*
//! working on the chunk (so the caller's next chunk is waiting in the queue while this one is
//! worked on, and the hand-off's round trips cost the chunk no time). The message succeeds
//! only if both did. A lane start carries no chunk of its own: it takes the caller's next one
//! and works on it in place.
//!
//! While the breaker in front of BOS is open, a message waits *before* handing its lane on,
//! so the caller's lanes pause where they are; if its invocation's time runs out first, it
//! goes back to the queue as a new message (`usecases::upstream_wait`), its retry budget
//! untouched.

use crate::chunk::{ChunkMessage, WorkMessage};
use crate::config::Settings;
use crate::ports::{BeneficiaryBackend, LaneStore, TaskStore, Vehicle, WorkQueue};
use crate::task::TaskId;
use crate::usecases::hand_off_turn::HandOffTurn;
use crate::usecases::process_chunk::{
    process_chunk, Attempts, ChunkError, ChunkReport, ChunkRun, Deferred,
};
use crate::usecases::schedule::{hand_on, HandOff, ScheduleError};
use crate::usecases::upstream_wait::{Upstream, REFRESH_CLOSED};
use std::time::Instant;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

/// The adapters a consumer works with, and its process's view of the breaker.
pub struct Ports<'a> {
    pub store: &'a dyn TaskStore,
    pub lanes: &'a dyn LaneStore,
    pub queue: &'a dyn WorkQueue,
    pub backend: &'a dyn BeneficiaryBackend,
    pub upstream: Upstream<'a>,
    /// The process's turn for hand-offs, so the messages of a batch do not race each other.
    pub turn: &'a HandOffTurn,
}

/// When hand-off records and waiting chunks written now may expire: after their task, like
/// item outcomes.
pub fn lane_records_expire(settings: &Settings) -> OffsetDateTime {
    OffsetDateTime::now_utc() + settings.retention + std::time::Duration::from_secs(86_400)
}

/// Hands the chunk's lane on: sends the caller's next chunk, or closes the lane. Chunks from
/// before lanes existed (no owner) hand nothing on.
pub async fn pass_lane_on(
    lanes: &dyn LaneStore,
    queue: &dyn WorkQueue,
    settings: &Settings,
    chunk: &ChunkMessage,
    redelivered: bool,
) -> Result<(), ScheduleError> {
    let turn = HandOffTurn::default();
    pass_lane_on_in_turn(&turn, lanes, queue, settings, chunk, redelivered).await
}

/// [`pass_lane_on`] in the process's `turn`.
async fn pass_lane_on_in_turn(
    turn: &HandOffTurn,
    lanes: &dyn LaneStore,
    queue: &dyn WorkQueue,
    settings: &Settings,
    chunk: &ChunkMessage,
    redelivered: bool,
) -> Result<(), ScheduleError> {
    let Some(owner) = chunk.owner.as_deref() else {
        return Ok(());
    };
    let step = HandOff {
        owner,
        vehicle: Vehicle::of_chunk(chunk),
        resend: redelivered,
        appended_until: None,
        expires_at: lane_records_expire(settings),
    };
    if let Some(next) = turn.hand_on(lanes, &step).await? {
        queue.enqueue(&[WorkMessage::Chunk(next)]).await?;
    }
    Ok(())
}

/// Handles one message. `redelivered` is SQS's word that this message was received before
/// (`ApproximateReceiveCount` > 1).
#[tracing::instrument(skip_all)]
pub async fn consume(
    ports: &Ports<'_>,
    settings: &Settings,
    message: &WorkMessage,
    redelivered: bool,
    deadline: Instant,
    bos_limit: &Semaphore,
) -> Result<ChunkReport, ChunkError> {
    let run = ChunkRun {
        store: ports.store,
        backend: ports.backend,
        settings,
        bos_limit,
        deadline,
        upstream: ports.upstream,
    };
    let until = deadline
        .checked_sub(settings.deadline_reserve)
        .unwrap_or_else(Instant::now);
    if !wait_for_upstream(ports, message, until).await? {
        return requeue(ports, message).await;
    }
    let taken;
    let chunk = match message {
        WorkMessage::Settle { settle, .. } => {
            // Its lane was handed on when it died; what is left is its items' outcomes.
            let settled = process_chunk(&run, settle, Attempts::Final).await;
            return held_back(ports, message, settled).await;
        }
        WorkMessage::Chunk(chunk) => chunk,
        WorkMessage::Start { start } => {
            let expires_at = lane_records_expire(settings);
            let vehicle = Vehicle::of_start(start);
            let until = Some(start.appended_until);
            match hand_on(ports.lanes, &start.owner, vehicle, true, until, expires_at).await? {
                Some(chunk) => {
                    taken = chunk;
                    &taken
                }
                // The caller's work was all taken by its other lanes: this lane closed.
                None => return Ok(ChunkReport::default()),
            }
        }
    };
    let (handed_on, worked) = tokio::join!(
        pass_lane_on_in_turn(
            ports.turn,
            ports.lanes,
            ports.queue,
            settings,
            chunk,
            redelivered
        ),
        process_chunk(&run, chunk, Attempts::Retryable)
    );
    // Either failing sends the message back: the work skips what is final, and the hand-off
    // repeats what it recorded.
    handed_on?;
    held_back(ports, message, worked).await
}

/// The task a message is for: its chunk's, or the one its lane start was sent for.
fn task_of(message: &WorkMessage) -> TaskId {
    match message {
        WorkMessage::Start { start } => start.task_id,
        WorkMessage::Settle { settle: c, .. } | WorkMessage::Chunk(c) => c.task_id,
    }
}

/// Holds the message while the breaker is open (saying so on its task), until work may start
/// (`true`) or `until` (`false`).
async fn wait_for_upstream(
    ports: &Ports<'_>,
    message: &WorkMessage,
    until: Instant,
) -> Result<bool, ChunkError> {
    ports.upstream.sync(REFRESH_CLOSED).await?;
    if !ports.upstream.breaker.is_open() {
        return Ok(true);
    }
    let now = OffsetDateTime::now_utc();
    ports.store.set_waiting(task_of(message), Some(now)).await?;
    Ok(ports.upstream.open_wait(until).await?)
}

/// A message whose items the breaker held until its time ran out goes back as a new one;
/// anything else is the work's own result.
async fn held_back(
    ports: &Ports<'_>,
    message: &WorkMessage,
    worked: Result<ChunkReport, ChunkError>,
) -> Result<ChunkReport, ChunkError> {
    match worked {
        Err(ChunkError::Incomplete {
            cause: Deferred::UpstreamDown,
            ..
        }) => requeue(ports, message).await,
        other => other,
    }
}

async fn requeue(ports: &Ports<'_>, message: &WorkMessage) -> Result<ChunkReport, ChunkError> {
    ports
        .queue
        .requeue(message)
        .await
        .map_err(ScheduleError::from)?;
    tracing::info!(task_id = %task_of(message), "message held by the bos breaker; sent again");
    Ok(ChunkReport {
        task_id: Some(task_of(message)),
        ..ChunkReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{beneficiaries, later};
    use crate::identity::Owner;
    use crate::memory::{MemoryBackend, MemoryLanes, MemoryQueue, MemoryStore};
    use crate::task::{Task, TaskStatus, TaskType};
    use crate::usecases::schedule::admit;

    #[tokio::test]
    async fn a_task_is_worked_through_its_lanes_to_the_end() {
        // Given a 10-chunk task admitted with 2 lanes
        let (store, lanes, queue) = (
            MemoryStore::default(),
            MemoryLanes::default(),
            MemoryQueue::default(),
        );
        let backend = MemoryBackend::default();
        let owner = Owner::from_subject("alice").unwrap();
        let task = Task::new(
            TaskType::BeneficiariesImport,
            owner.clone(),
            20,
            OffsetDateTime::now_utc(),
        );
        store.insert_task(&task).await.unwrap();
        let chunks = crate::chunk::split(
            task.id,
            task.task_type,
            &owner.storage_key(),
            beneficiaries(20),
            2,
        );
        let s = Settings::default();
        admit(
            &lanes,
            &queue,
            &owner.storage_key(),
            task.id,
            &chunks,
            2,
            lane_records_expire(&s),
        )
        .await
        .unwrap();
        let breaker = crate::breaker::Breaker::default();
        let ports = Ports {
            store: &store,
            lanes: &lanes,
            queue: &queue,
            backend: &backend,
            upstream: Upstream {
                breaker: &breaker,
                store: &store,
            },
            turn: &HandOffTurn::default(),
        };
        let limit = Semaphore::new(4);

        // When every message is consumed, each delivered twice (a redelivery after success)
        let mut finished = vec![];
        while let Some(m) = queue.pop() {
            for redelivered in [false, true] {
                finished.extend(
                    consume(&ports, &s, &m, redelivered, later(), &limit)
                        .await
                        .unwrap()
                        .finished,
                );
            }
        }

        // Then the task finished once, every item created once, and no lane is left open
        assert_eq!(finished, vec![TaskStatus::Completed]);
        assert_eq!(backend.creations(), 20);
        let state = lanes.lane_state(&owner.storage_key()).await.unwrap();
        assert_eq!((state.cursor, state.lanes), (10, 0));
    }
}
