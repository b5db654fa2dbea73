//! One consumer process's hand-offs, one at a time, each starting from what the one before it
//! learnt.
//!
//! The messages of a batch start together, and each hands its lane on at once. Two lanes of
//! the same caller would read the caller's lane state at the same moment and claim the same
//! chunk: one claim wins, the other is refused and tries again. Counted on the local stack,
//! that was more than one refused claim a chunk (benchmarks.md). Taken in turn, the second
//! hand-off starts from the state the first one left, with no read and no race with it.
//!
//! What a turn passes on is a belief, never trusted for safety: a claim made on a stale state
//! loses and learns the state it lost to (`schedule::hand_on_from`). So it is passed on only
//! while it is fresh, to the hand-off waiting for the turn; an older one is read again.

use crate::chunk::ChunkMessage;
use crate::ports::{LaneState, LaneStore};
use crate::usecases::schedule::{hand_on_from, HandOff, ScheduleError};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long what a hand-off learnt is passed on. The hand-off that waited for the turn takes
/// it within a millisecond; one that comes later would likely find other consumers moved the
/// cursor meanwhile, and a read costs no more than a refused claim.
const FRESH: Duration = Duration::from_millis(20);

/// A process's turn for hand-offs (one per consumer process, shared by its invocations).
pub struct HandOffTurn {
    last: Mutex<Option<Learnt>>,
    /// How long what a hand-off learnt is passed on ([`FRESH`]).
    fresh: Duration,
}

impl Default for HandOffTurn {
    fn default() -> Self {
        Self {
            last: Mutex::default(),
            fresh: FRESH,
        }
    }
}

/// The lane state a hand-off left its owner in, and when.
struct Learnt {
    owner: String,
    state: LaneState,
    at: Instant,
}

impl HandOffTurn {
    /// Makes the hand-off once the turn is free, from the state the last one learnt if it is
    /// the same owner's and fresh.
    pub async fn hand_on(
        &self,
        lanes: &dyn LaneStore,
        step: &HandOff<'_>,
    ) -> Result<Option<ChunkMessage>, ScheduleError> {
        let mut last = self.last.lock().await;
        let known = last
            .take()
            .filter(|l| l.owner == step.owner && l.at.elapsed() < self.fresh)
            .map(|l| l.state);
        let handed = hand_on_from(lanes, step, known).await?;
        *last = handed.learnt.map(|state| Learnt {
            owner: step.owner.to_owned(),
            state,
            at: Instant::now(),
        });
        Ok(handed.chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::split;
    use crate::fixtures::beneficiaries;
    use crate::memory::{MemoryLanes, MemoryQueue};
    use crate::ports::Vehicle;
    use crate::task::{TaskId, TaskType};
    use crate::usecases::schedule::{admit, hand_on};
    use time::OffsetDateTime;

    /// Alice's 4 chunks, admitted with 2 lanes: her state is cursor 0 of 4.
    async fn alice_with_four_chunks() -> (MemoryLanes, TaskId) {
        let (lanes, queue) = (MemoryLanes::default(), MemoryQueue::default());
        let id = TaskId::new_random();
        let chunks = split(
            id,
            TaskType::BeneficiariesImport,
            "alice",
            beneficiaries(4),
            1,
        );
        admit(&lanes, &queue, "alice", id, &chunks, 2, far())
            .await
            .unwrap();
        (lanes, id)
    }

    fn far() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::days(31)
    }

    /// The first delivery of the chunk message `chunk` of task `id`, handing its lane on.
    fn first_delivery(id: TaskId, chunk: u32) -> HandOff<'static> {
        HandOff {
            owner: "alice",
            vehicle: Vehicle::Chunk { task_id: id, chunk },
            resend: false,
            appended_until: None,
            expires_at: far(),
        }
    }

    #[tokio::test]
    async fn hand_offs_taken_in_turn_read_the_state_once_and_lose_no_claim() {
        // Given alice's lane state, read by no one yet
        let (lanes, id) = alice_with_four_chunks().await;
        let reads = lanes.state_reads();

        // When the two messages of one batch hand their lanes on at once, in one turn (what
        // a hand-off learnt kept however slow the machine, so the test does not hang on time)
        let turn = HandOffTurn {
            fresh: Duration::MAX,
            ..HandOffTurn::default()
        };
        let (a, b) = (first_delivery(id, 10), first_delivery(id, 11));
        let (a, b) = tokio::join!(turn.hand_on(&lanes, &a), turn.hand_on(&lanes, &b));

        // Then they take chunks 0 and 1, with one read of the state and one claim each
        let mut taken = [a.unwrap().unwrap().chunk, b.unwrap().unwrap().chunk];
        taken.sort();
        assert_eq!(taken, [0, 1]);
        assert_eq!(lanes.state_reads() - reads, 1);
        assert_eq!(lanes.claims(), 2);
    }

    #[tokio::test]
    async fn a_state_moved_by_another_process_is_learnt_from_the_lost_claim() {
        // Given alice's chunks 0 and 1 taken by two lanes, and a hand-off that believes the
        // cursor is still at 1
        let (lanes, id) = alice_with_four_chunks().await;
        for chunk in [10, 11] {
            let v = Vehicle::Chunk { task_id: id, chunk };
            hand_on(&lanes, "alice", v, false, None, far())
                .await
                .unwrap();
        }
        let mut stale = lanes.lane_state("alice").await.unwrap();
        stale.cursor = 1;
        let reads = lanes.state_reads();

        // When it hands on from that belief
        let next = hand_on_from(&lanes, &first_delivery(id, 12), Some(stale))
            .await
            .unwrap();

        // Then its claim of chunk 1 loses and tells it the cursor is at 2: it takes chunk 2,
        // with no read of the state, and knows the cursor is at 3 now
        assert_eq!(next.chunk.map(|c| c.chunk), Some(2));
        assert_eq!(lanes.state_reads(), reads);
        assert_eq!(next.learnt.map(|s| s.cursor), Some(3));
    }
}
