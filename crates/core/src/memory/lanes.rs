//! The lane store in memory: one mutex over everything, so each method is atomic as the
//! DynamoDB transactions are.

use super::lock;
use crate::chunk::ChunkMessage;
use crate::ports::*;
use crate::task::TaskId;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use time::OffsetDateTime;

/// The lane store in memory: one mutex over everything, so each method is atomic as the
/// DynamoDB transactions are.
#[derive(Default)]
pub struct MemoryLanes {
    inner: Mutex<LanesInner>,
    writes: AtomicUsize,
    chunk_writes: AtomicUsize,
    state_reads: AtomicUsize,
    claims: AtomicUsize,
}

impl MemoryLanes {
    /// Write requests the DynamoDB lane store would have made: a `BatchWriteItem` per 25
    /// waiting chunks, and one transaction per append, claim or close.
    pub fn write_requests(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Waiting chunks written, each write counted (a chunk written twice counts twice).
    pub fn chunks_written(&self) -> usize {
        self.chunk_writes.load(Ordering::SeqCst)
    }

    /// Reads of a caller's lane state.
    pub fn state_reads(&self) -> usize {
        self.state_reads.load(Ordering::SeqCst)
    }

    /// Claims made, the ones that lost included.
    pub fn claims(&self) -> usize {
        self.claims.load(Ordering::SeqCst)
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
    ) -> LaneStep {
        let state = self.states.get(owner).copied().unwrap_or_default();
        if self.handoffs.get(&vehicle).copied() != replacing {
            return LaneStep::Lost;
        }
        if !allowed(&state) {
            return LaneStep::Moved(state);
        }
        self.handoffs.insert(vehicle, to);
        apply(self.states.entry(owner.to_owned()).or_default());
        LaneStep::Done
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
        self.chunk_writes.fetch_add(chunks.len(), Ordering::SeqCst);
        let mut inner = lock(&self.inner);
        for c in chunks {
            inner.chunks.insert((c.task_id, c.chunk), c.clone());
        }
        Ok(())
    }

    async fn lane_state(&self, owner: &str) -> Result<LaneState, StoreError> {
        self.state_reads.fetch_add(1, Ordering::SeqCst);
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
    ) -> Result<LaneStep, StoreError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
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
    ) -> Result<LaneStep, StoreError> {
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
