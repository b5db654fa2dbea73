//! Scheduling: which chunks are in the work queue, so that callers share BOS fairly.
//!
//! SQS hands out messages roughly in the order they were sent, so whatever sits in the queue
//! ahead of a caller's chunk is what that chunk waits for. The queue therefore never holds a
//! caller's backlog; it holds a few chunks per caller (flow control), and the backlog waits
//! in the store:
//!
//! - Every caller (owner) has a **sequence**: all the chunks they submitted, numbered in
//!   submission order, with a **cursor** (the next chunk no lane has taken) and a count of
//!   open **lanes** (at most `lanes_per_owner`, set by `submit`).
//! - A lane is a chain of messages. The consumer that receives a chunk first **hands its lane
//!   on**: it takes the chunk at the cursor and sends it to the queue, or, if the caller has
//!   nothing left, closes the lane. Then it works on its own chunk. So a lane holds at most
//!   one chunk in the queue and one in work, and a caller never has more than about
//!   `lanes_per_owner` chunks waiting in the queue: another caller's new task waits behind
//!   those, not behind a backlog.
//! - `submit` stores the chunks, opens the lanes the caller is missing by sending
//!   [`LaneStart`] messages, and appends the chunks to the sequence. A consumer that receives
//!   a start takes the next chunk and works on it in place.
//!
//! Exactly-once hand-offs: the message that hands a lane on is its **vehicle**, and the store
//! records what each vehicle handed on in the same atomic step that moves the cursor. A
//! vehicle that comes back (a redelivery after a crash, a failed send) repeats its recorded
//! hand-off instead of taking another chunk; SQS drops the repeated send as a duplicate within
//! its five-minute window, and a later duplicate only re-reads items that are already final.
//! A duplicate *message* (as opposed to a redelivery) hands nothing on, so duplicates never
//! multiply down a chain.
//!
//! Nothing lost: a chunk leaves the sequence only when a vehicle records it, and the vehicle
//! is deleted from the queue only after the chunk was sent (or, for a start, worked on).
//! A lane closes only when the cursor has reached the end of the sequence, in the same atomic
//! step that checks it, so a chunk appended at that moment makes the close fail and the lane
//! takes it instead. Starts are sent *before* the append that counts them: if `submit` fails
//! in between, the starts find nothing of that task (it was never appended) and the worst
//! outcome is a lane that is not counted, which lets the caller open one lane too many later,
//! never one too few (a counted lane without a vehicle would stall the caller). Since a start
//! can outrun its own append, it carries the sequence length the append will produce and,
//! finding the sequence shorter, waits for it (briefly: [`APPEND_WAIT`]) before it may close.

use crate::chunk::{ChunkMessage, LaneStart, WorkMessage};
use crate::ports::{
    Handoff, LaneState, LaneStep, LaneStore, QueueError, StoreError, Vehicle, WorkQueue,
};
use crate::task::TaskId;
use time::OffsetDateTime;

/// Retries of a read-then-write step that lost a race against another writer of the same
/// owner's state. Contention is only between one caller's own lanes and submissions.
const RACE_RETRIES: usize = 50;

/// How long a lane start waits for the append it was sent ahead of. An append follows its
/// starts within milliseconds unless the submission failed, and then the wait is moot.
pub const APPEND_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the caller's lane state kept changing; gave up after {RACE_RETRIES} tries")]
    Contended,
}

impl Vehicle {
    pub fn of_chunk(chunk: &ChunkMessage) -> Self {
        Self::Chunk {
            task_id: chunk.task_id,
            chunk: chunk.chunk,
        }
    }
    pub fn of_start(start: &LaneStart) -> Self {
        Self::Start {
            task_id: start.task_id,
            lane: start.lane,
        }
    }
}

/// The two ports scheduling works through: where chunks and lane state are kept, and the
/// work queue.
#[derive(Clone, Copy)]
pub struct Scheduler<'a> {
    pub lanes: &'a dyn LaneStore,
    pub queue: &'a dyn WorkQueue,
}

/// Submission side: keeps the chunks, opens the lanes the owner lacks, appends the chunks to
/// the owner's sequence. Returns how many lanes it opened. On error nothing of the task was
/// appended, so no chunk of it will ever be worked on.
#[tracing::instrument(skip_all, fields(task_id = %task_id, chunks = chunks.len()))]
pub async fn admit(
    lanes: &dyn LaneStore,
    queue: &dyn WorkQueue,
    owner: &str,
    task_id: TaskId,
    chunks: &[ChunkMessage],
    lanes_per_owner: u64,
    expires_at: OffsetDateTime,
) -> Result<u64, ScheduleError> {
    let admission = Admission {
        owner,
        task_id,
        count: chunks.len() as u64,
        trace: chunks.first().and_then(|c| c.trace.clone()),
        lanes_per_owner,
        expires_at,
    };
    admit_with(lanes, queue, &admission, chunks).await
}

/// [`admit`] for chunks `0..count` of a task that are stored already (the ingest of an
/// uploaded file stores them as it reads).
#[tracing::instrument(skip_all, fields(task_id = %admission.task_id, chunks = admission.count))]
pub async fn admit_stored(
    lanes: &dyn LaneStore,
    queue: &dyn WorkQueue,
    admission: &Admission<'_>,
) -> Result<u64, ScheduleError> {
    admit_with(lanes, queue, admission, &[]).await
}

/// A task's chunks joining its owner's sequence.
pub struct Admission<'a> {
    pub owner: &'a str,
    pub task_id: TaskId,
    pub count: u64,
    /// The trace lane starts travel in.
    pub trace: Option<crate::trace::Trace>,
    pub lanes_per_owner: u64,
    pub expires_at: OffsetDateTime,
}

async fn admit_with(
    lanes: &dyn LaneStore,
    queue: &dyn WorkQueue,
    admission: &Admission<'_>,
    to_store: &[ChunkMessage],
) -> Result<u64, ScheduleError> {
    let Admission {
        owner,
        task_id,
        count,
        lanes_per_owner,
        expires_at,
        ..
    } = *admission;
    let mut sent: u64 = 0;
    let mut stored = to_store.is_empty();
    for _ in 0..RACE_RETRIES {
        let seen = lanes.lane_state(owner).await?;
        let open = count.min(lanes_per_owner.saturating_sub(seen.lanes));
        if open > sent {
            let starts: Vec<WorkMessage> = (sent..open)
                .map(|lane| WorkMessage::Start {
                    start: LaneStart {
                        owner: owner.to_owned(),
                        task_id,
                        lane: lane as u32,
                        appended_until: seen.next_seq + count,
                        trace: admission.trace.clone(),
                    },
                })
                .collect();
            queue.enqueue(&starts).await?;
            sent = open;
        }
        // After the first send: a queue that is down leaves nothing stored behind.
        if !stored {
            lanes.store_chunks(to_store, expires_at).await?;
            stored = true;
        }
        if lanes
            .append(owner, seen, task_id, count as u32, open, expires_at)
            .await?
        {
            return Ok(open);
        }
    }
    Err(ScheduleError::Contended)
}

/// Consumer side: hands the vehicle's lane on. Returns the chunk the lane now carries (to be
/// sent to the queue by a chunk vehicle, or worked on in place by a start), or `None` when the
/// lane closed, or when this is a duplicate message whose hand-off already happened.
///
/// `resend` says whether an earlier hand-off of this vehicle should be returned again: true
/// for a redelivery (the earlier send may have been lost) and for starts (whose chunk is
/// worked on in place), false for a first delivery. `appended_until` is a start's
/// [`LaneStart::appended_until`].
pub async fn hand_on(
    lanes: &dyn LaneStore,
    owner: &str,
    vehicle: Vehicle,
    resend: bool,
    appended_until: Option<u64>,
    expires_at: OffsetDateTime,
) -> Result<Option<ChunkMessage>, ScheduleError> {
    let step = HandOff {
        owner,
        vehicle,
        resend,
        appended_until,
        expires_at,
    };
    Ok(hand_on_from(lanes, &step, None).await?.chunk)
}

/// One hand-off to make: whose lane, by which vehicle, and how ([`hand_on`]'s arguments).
pub struct HandOff<'a> {
    pub owner: &'a str,
    pub vehicle: Vehicle,
    pub resend: bool,
    pub appended_until: Option<u64>,
    pub expires_at: OffsetDateTime,
}

/// What a hand-off did, and the owner's lane state as its last step left it, when known.
pub struct HandedOn {
    pub chunk: Option<ChunkMessage>,
    pub learnt: Option<LaneState>,
}

/// [`hand_on`], starting from `known`, the owner's lane state as the caller believes it, if
/// any: the read of the state is skipped. A stale belief costs a claim that loses, and the
/// claim's refusal says the state it lost to; it never hands on twice.
#[tracing::instrument(skip_all, fields(vehicle = ?step.vehicle))]
pub async fn hand_on_from(
    lanes: &dyn LaneStore,
    step: &HandOff<'_>,
    known: Option<LaneState>,
) -> Result<HandedOn, ScheduleError> {
    let HandOff {
        owner,
        vehicle,
        resend,
        appended_until,
        expires_at,
    } = *step;
    // `replacing`: a recorded hand-off to a chunk that has since expired, to be replaced.
    let mut replacing: Option<Handoff> = None;
    let wait_until = tokio::time::Instant::now() + APPEND_WAIT;
    // Doubles from 20 ms to 160 ms: a large task's chunks take a second or more to store, and
    // every lane start of it waits meanwhile; rereading every 20 ms would load the table while
    // it is busiest.
    let mut append_poll = std::time::Duration::from_millis(20);
    let mut races = 0;
    // What the store holds, when known without a read. A first delivery has almost never
    // handed on yet: skip that read, and let the claim's condition (nothing recorded) catch the
    // rare duplicate, which the next round then reads. A lane that lost a race to its caller's
    // other lanes is told the state they left (`LaneStep::Moved`): it tries again at once.
    // Neither is trusted for safety: a claim or close whose view was stale just loses.
    let mut known_handoff: Option<Option<Handoff>> = (!resend).then_some(None);
    let mut known_state: Option<LaneState> = known;
    // The owner's lane state as the last step left it.
    let mut learnt: Option<LaneState> = None;
    while races < RACE_RETRIES {
        let recorded = match known_handoff.take() {
            Some(recorded) => recorded,
            None => lanes.handoff_of(vehicle).await?,
        };
        let seq = if recorded == replacing {
            // Nothing handed on yet (or only an expired chunk): take the next chunk, or close.
            let state = match known_state.take() {
                Some(state) => state,
                None => lanes.lane_state(owner).await?,
            };
            learnt = Some(state);
            let claiming = state.cursor < state.next_seq;
            let uncount = state.lanes > 0;
            let step = if claiming {
                lanes
                    .claim(owner, state.cursor, vehicle, replacing, expires_at)
                    .await?
            } else if appended_until.is_some_and(|until| state.next_seq < until)
                && tokio::time::Instant::now() < wait_until
            {
                // This start outran the append it was sent ahead of.
                tokio::time::sleep(append_poll).await;
                append_poll = (append_poll * 2).min(std::time::Duration::from_millis(160));
                known_handoff = Some(recorded);
                learnt = None;
                continue;
            } else {
                lanes
                    .close_lane(owner, state.cursor, uncount, vehicle, replacing, expires_at)
                    .await?
            };
            match step {
                LaneStep::Done if claiming => {
                    learnt = Some(LaneState {
                        cursor: state.cursor + 1,
                        ..state
                    });
                    state.cursor
                }
                LaneStep::Done => {
                    let lanes = state.lanes - u64::from(uncount);
                    return Ok(HandedOn {
                        chunk: None,
                        learnt: Some(LaneState { lanes, ..state }),
                    });
                }
                LaneStep::Moved(now) => {
                    races += 1;
                    known_handoff = Some(replacing);
                    known_state = Some(now);
                    continue;
                }
                LaneStep::Lost => {
                    races += 1;
                    learnt = None;
                    continue;
                }
            }
        } else {
            match recorded {
                Some(Handoff::Seq(seq)) if resend => seq,
                // Handed on by an earlier delivery: a duplicate sends nothing more.
                _ => {
                    return Ok(HandedOn {
                        chunk: None,
                        learnt,
                    })
                }
            }
        };
        match lanes.chunk_at(owner, seq).await? {
            Some(chunk) => {
                return Ok(HandedOn {
                    chunk: Some(chunk),
                    learnt,
                })
            }
            None => {
                // Expired while the owner's lanes stood still for a month: take the next
                // chunk in its place rather than carry a hole.
                tracing::warn!(seq, "handed-on chunk no longer exists; taking the next");
                replacing = Some(Handoff::Seq(seq));
            }
        }
    }
    Err(ScheduleError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::split;
    use crate::fixtures::beneficiaries;
    use crate::memory::{MemoryLanes, MemoryQueue};
    use crate::task::TaskType;
    use std::collections::HashSet;

    fn chunks(owner: &str, n: usize) -> (TaskId, Vec<ChunkMessage>) {
        let id = TaskId::new_random();
        let items = beneficiaries(n);
        (
            id,
            split(id, TaskType::BeneficiariesImport, owner, items, 1),
        )
    }

    fn far() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::days(31)
    }

    /// What a consumer does with a start: take the owner's next chunk, if any.
    async fn take(lanes: &MemoryLanes, start: &LaneStart) -> Option<ChunkMessage> {
        let v = Vehicle::of_start(start);
        let until = Some(start.appended_until);
        hand_on(lanes, &start.owner, v, true, until, far())
            .await
            .unwrap()
    }

    /// Plays the consumer: takes messages off the queue one by one, hands each lane on, and
    /// returns the chunks worked on, in order, and the most messages the queue ever held.
    async fn drain(lanes: &MemoryLanes, queue: &MemoryQueue) -> (Vec<(TaskId, u32)>, usize) {
        let (mut worked, mut peak) = (vec![], 0);
        while let Some(message) = queue.pop() {
            peak = peak.max(queue.pending() + 1);
            let chunk = match message {
                WorkMessage::Start { start } => match take(lanes, &start).await {
                    Some(c) => c,
                    None => continue,
                },
                WorkMessage::Chunk(c) => c,
                WorkMessage::Settle { .. } => unreachable!("no dead letters here"),
            };
            let owner = chunk.owner.clone().unwrap();
            let v = Vehicle::of_chunk(&chunk);
            if let Some(next) = hand_on(lanes, &owner, v, false, None, far()).await.unwrap() {
                queue.enqueue(&[WorkMessage::Chunk(next)]).await.unwrap();
            }
            worked.push((chunk.task_id, chunk.chunk));
        }
        (worked, peak)
    }

    #[tokio::test]
    async fn every_chunk_is_worked_on_once_and_lanes_close() {
        // Given a caller with 3 lanes and a task of 10 chunks
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        let (id, cs) = chunks("alice", 10);

        // When it is admitted and the queue is drained
        let opened = admit(&lanes, &queue, "alice", id, &cs, 3, far())
            .await
            .unwrap();
        assert_eq!(opened, 3);
        assert_eq!(queue.pending(), 3, "only the starts are in the queue");
        let (worked, _) = drain(&lanes, &queue).await;

        // Then each chunk was worked on exactly once, and every lane closed
        assert_eq!(worked.len(), 10);
        assert_eq!(worked.iter().collect::<HashSet<_>>().len(), 10);
        let s = lanes.lane_state("alice").await.unwrap();
        assert_eq!((s.cursor, s.next_seq, s.lanes), (10, 10, 0));
    }

    #[tokio::test]
    async fn the_queue_never_holds_more_than_a_window_of_one_caller() {
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        for _ in 0..5 {
            let (id, cs) = chunks("alice", 40);
            admit(&lanes, &queue, "alice", id, &cs, 4, far())
                .await
                .unwrap();
        }
        // Five tasks of 40 chunks: still only the first task's 4 starts are queued.
        assert_eq!(queue.pending(), 4);
        let (worked, peak) = drain(&lanes, &queue).await;
        assert_eq!(worked.len(), 200);
        assert!(peak <= 4, "peak {peak}");
        let s = lanes.lane_state("alice").await.unwrap();
        assert_eq!((s.cursor, s.next_seq, s.lanes), (200, 200, 0));
    }

    #[tokio::test]
    async fn a_quiet_caller_waits_behind_a_window_not_a_backlog() {
        // Given alice's backlog of 200 chunks, her lanes running
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        let (a, cs) = chunks("alice", 200);
        admit(&lanes, &queue, "alice", a, &cs, 4, far())
            .await
            .unwrap();
        for _ in 0..20 {
            let Some(WorkMessage::Start { start }) = queue.pop() else {
                break;
            };
            let c = take(&lanes, &start).await.unwrap();
            let next = hand_on(&lanes, "alice", Vehicle::of_chunk(&c), false, None, far())
                .await
                .unwrap()
                .unwrap();
            queue.enqueue(&[WorkMessage::Chunk(next)]).await.unwrap();
        }
        // When bob submits one chunk
        let (b, bs) = chunks("bob", 1);
        admit(&lanes, &queue, "bob", b, &bs, 4, far())
            .await
            .unwrap();

        // Then bob's work is at most a window deep in the queue
        let (worked, _) = drain(&lanes, &queue).await;
        let bob_at = worked.iter().position(|(t, _)| *t == b).unwrap();
        assert!(bob_at <= 4, "bob's chunk was worked on {bob_at}th");
    }

    #[tokio::test]
    async fn a_redelivery_repeats_its_handoff_and_a_duplicate_hands_on_nothing() {
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        let (id, cs) = chunks("alice", 5);
        admit(&lanes, &queue, "alice", id, &cs, 1, far())
            .await
            .unwrap();
        let Some(WorkMessage::Start { start }) = queue.pop() else {
            panic!("a start")
        };
        let v = Vehicle::of_start(&start);
        let first = hand_on(&lanes, "alice", v, true, None, far())
            .await
            .unwrap()
            .unwrap();
        // The same start again (a redelivery) yields the same chunk, and the cursor stays.
        let again = hand_on(&lanes, "alice", v, true, None, far())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.task_id, first.chunk), (again.task_id, again.chunk));
        assert_eq!(lanes.lane_state("alice").await.unwrap().cursor, 1);

        let vc = Vehicle::of_chunk(&first);
        let next = hand_on(&lanes, "alice", vc, false, None, far())
            .await
            .unwrap()
            .unwrap();
        // A duplicate of the chunk message (not a redelivery) hands on nothing more...
        assert!(hand_on(&lanes, "alice", vc, false, None, far())
            .await
            .unwrap()
            .is_none());
        // ...and a redelivery hands on the same successor.
        let resent = hand_on(&lanes, "alice", vc, true, None, far())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.chunk, resent.chunk);
        assert_eq!(lanes.lane_state("alice").await.unwrap().cursor, 2);
    }

    #[tokio::test]
    async fn a_chunk_appended_while_a_lane_closes_is_not_stranded() {
        // Given alice's only lane at the end of her sequence
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        let (id, cs) = chunks("alice", 1);
        admit(&lanes, &queue, "alice", id, &cs, 1, far())
            .await
            .unwrap();
        let Some(WorkMessage::Start { start }) = queue.pop() else {
            panic!()
        };
        let c = take(&lanes, &start).await.unwrap();
        // When a new task is appended just before the lane would close (lanes are full, so it
        // opens none)
        let (id2, cs2) = chunks("alice", 2);
        admit(&lanes, &queue, "alice", id2, &cs2, 1, far())
            .await
            .unwrap();
        assert_eq!(queue.pending(), 0);
        // Then the lane takes the new work instead of closing
        let next = hand_on(&lanes, "alice", Vehicle::of_chunk(&c), false, None, far())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.task_id, id2);
        queue.enqueue(&[WorkMessage::Chunk(next)]).await.unwrap();
        let (worked, _) = drain(&lanes, &queue).await;
        assert_eq!(worked.len(), 2);
        assert_eq!(lanes.lane_state("alice").await.unwrap().lanes, 0);
    }

    #[tokio::test]
    async fn a_start_that_outruns_its_append_waits_for_it() {
        // Given a start sent for a task whose append has not landed yet
        let lanes = std::sync::Arc::new(MemoryLanes::default());
        let (id, cs) = chunks("alice", 2);
        lanes.store_chunks(&cs, far()).await.unwrap();
        let start = LaneStart {
            owner: "alice".into(),
            task_id: id,
            lane: 0,
            appended_until: 2,
            trace: None,
        };
        // When the append lands while the start is being handled
        let appender = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let seen = lanes.lane_state("alice").await.unwrap();
                lanes.append("alice", seen, id, 2, 1, far()).await.unwrap()
            })
        };
        let taken = take(&lanes, &start).await;
        assert!(appender.await.unwrap());

        // Then the start takes the first chunk instead of closing a lane it was counted for
        assert_eq!(taken.map(|c| c.chunk), Some(0));
        assert_eq!(lanes.lane_state("alice").await.unwrap().lanes, 1);
    }

    #[tokio::test]
    async fn a_failed_send_appends_nothing() {
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        queue.set_down(true);
        let (id, cs) = chunks("alice", 3);
        assert!(admit(&lanes, &queue, "alice", id, &cs, 2, far())
            .await
            .is_err());
        let s = lanes.lane_state("alice").await.unwrap();
        assert_eq!((s.next_seq, s.lanes), (0, 0));
    }

    /// A lane store whose first claim loses a race: another lane of the owner claims the same
    /// chunk just before it. Counts the reads hand-offs make.
    struct Racing {
        inner: MemoryLanes,
        rival: Vehicle,
        raced: std::sync::atomic::AtomicBool,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl LaneStore for Racing {
        async fn store_chunks(
            &self,
            chunks: &[ChunkMessage],
            expires_at: OffsetDateTime,
        ) -> Result<(), StoreError> {
            self.inner.store_chunks(chunks, expires_at).await
        }
        async fn lane_state(&self, owner: &str) -> Result<LaneState, StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.lane_state(owner).await
        }
        async fn append(
            &self,
            owner: &str,
            seen: LaneState,
            task_id: TaskId,
            chunks: u32,
            new_lanes: u64,
            expires_at: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let inner = &self.inner;
            inner
                .append(owner, seen, task_id, chunks, new_lanes, expires_at)
                .await
        }
        async fn handoff_of(&self, vehicle: Vehicle) -> Result<Option<Handoff>, StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.handoff_of(vehicle).await
        }
        async fn claim(
            &self,
            owner: &str,
            cursor: u64,
            vehicle: Vehicle,
            replacing: Option<Handoff>,
            expires_at: OffsetDateTime,
        ) -> Result<LaneStep, StoreError> {
            if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let rival = self
                    .inner
                    .claim(owner, cursor, self.rival, None, expires_at);
                assert_eq!(rival.await?, LaneStep::Done);
            }
            let inner = &self.inner;
            inner
                .claim(owner, cursor, vehicle, replacing, expires_at)
                .await
        }
        async fn close_lane(
            &self,
            owner: &str,
            cursor: u64,
            uncount: bool,
            vehicle: Vehicle,
            replacing: Option<Handoff>,
            expires_at: OffsetDateTime,
        ) -> Result<LaneStep, StoreError> {
            let inner = &self.inner;
            inner
                .close_lane(owner, cursor, uncount, vehicle, replacing, expires_at)
                .await
        }
        async fn chunk_at(
            &self,
            owner: &str,
            seq: u64,
        ) -> Result<Option<ChunkMessage>, StoreError> {
            self.inner.chunk_at(owner, seq).await
        }
    }

    #[tokio::test]
    async fn a_lane_that_loses_a_race_takes_the_next_chunk_without_reading_again() {
        // Given a caller with 3 chunks, and a lane whose first claim another lane beats
        let (id, cs) = chunks("alice", 3);
        let lanes = Racing {
            inner: MemoryLanes::default(),
            rival: Vehicle::Start {
                task_id: id,
                lane: 1,
            },
            raced: false.into(),
            reads: 0.into(),
        };
        let queue = MemoryQueue::default();
        admit(&lanes.inner, &queue, "alice", id, &cs, 2, far())
            .await
            .unwrap();

        // When a chunk's first delivery hands its lane on
        let v = Vehicle::Chunk {
            task_id: id,
            chunk: 0,
        };
        let next = hand_on(&lanes, "alice", v, false, None, far())
            .await
            .unwrap();

        // Then it takes the chunk after the rival's, with the one read of the state it began
        // with: the lost claim told it the state it lost to
        assert_eq!(next.map(|c| c.chunk), Some(1));
        assert_eq!(lanes.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            lanes.inner.handoff_of(v).await.unwrap(),
            Some(Handoff::Seq(1))
        );
    }
}
