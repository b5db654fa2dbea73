//! The lane store (`usecases::schedule`) on the tasks table:
//!
//! | item            | pk               | sk                 | also                                  |
//! |-----------------|------------------|--------------------|---------------------------------------|
//! | lane state      | `SCHED#{owner}`  | `STATE`            | `next_seq`, `cursor`, `lanes`         |
//! | sequence run    | `SCHED#{owner}`  | `SEG#{first, 12}`  | `task_id`, `chunks`: seqs `first..first+chunks` are that task's chunks 0.. |
//! | waiting chunk   | `TASK#{id}`      | `CHUNK#{n, 6}`     | `packed` (the chunk message, deflated JSON; `body`, plain, before) |
//! | chunk's hand-off | `TASK#{id}`     | `HANDOFF#{n, 6}`   | `handoff` once the chunk handed its lane on |
//! | lane start      | `TASK#{id}`      | `START#{n, 3}`     | `handoff`                             |
//!
//! `{owner}` is the owner's storage key (a hash). `handoff` is `seq:{n}` or `end`. Every item
//! but the lane state carries `expires_at`: the lane state is one small item per caller, kept
//! for as long as the caller has tasks.
//!
//! A chunk's hand-off is an item of its own, not an attribute of the waiting chunk: an update
//! is billed for the whole item it changes, twice in a transaction, and the chunk holds 32
//! items' bodies (about 7 KB as plain JSON: 14 units a hand-off instead of 2). Chunks stored
//! before that carry their hand-off on themselves (`handoff`); reads look there too.
//!
//! Each [`LaneStore`] step that changes two items is one `TransactWriteItems`, whose
//! conditions are the step's "if nobody changed it since I read it".

use super::codec::corrupt;
use super::codec::{n, s, task_pk, Item};
use super::deflated;
use super::table::{build_error, store_error, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use tasks_core::chunk::ChunkMessage;
use tasks_core::ports::{Handoff, LaneState, LaneStep, LaneStore, StoreError, Vehicle};
use tasks_core::task::TaskId;
use time::OffsetDateTime;

/// `BatchWriteItem` takes at most 25 items.
const WRITES_PER_BATCH: usize = 25;
/// Batch writes of one task's chunks in flight at once (docs/benchmarks.md shows what it buys).
pub const PARALLEL_WRITES: usize = 4;

#[derive(Clone)]
pub struct DynamoLanes {
    table: Table,
    parallel_writes: usize,
    /// Sequence runs this process has looked up, shared by its clones.
    runs: std::sync::Arc<std::sync::Mutex<RunCache>>,
}

/// A sequence run as stored: seqs `first..first + chunks` of `owner` are `task_id`'s chunks.
#[derive(Clone)]
struct Run {
    owner: String,
    first: u64,
    chunks: u64,
    task_id: TaskId,
}

/// The runs a consumer found last. A run never changes once its append committed, and seqs are
/// never reused, so a cached run stays true: every chunk of a large task after its first is
/// found without the `Query` (one request fewer per hand-off). Bounded, oldest out first.
#[derive(Default)]
struct RunCache(std::collections::VecDeque<Run>);

impl RunCache {
    const KEPT: usize = 64;

    fn find(&self, owner: &str, seq: u64) -> Option<Run> {
        self.0
            .iter()
            .find(|r| r.owner == owner && r.first <= seq && seq - r.first < r.chunks)
            .cloned()
    }

    fn keep(&mut self, run: Run) {
        if self.0.len() == Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back(run);
    }
}

fn owner_pk(owner: &str) -> String {
    format!("SCHED#{owner}")
}

fn state_key(owner: &str) -> Item {
    HashMap::from([("pk".into(), s(owner_pk(owner))), ("sk".into(), s("STATE"))])
}

fn segment_sk(first: u64) -> String {
    format!("SEG#{first:012}")
}

fn chunk_key(task_id: TaskId, chunk: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(task_pk(task_id))),
        ("sk".into(), s(format!("CHUNK#{chunk:06}"))),
    ])
}

fn vehicle_key(vehicle: Vehicle) -> Item {
    match vehicle {
        Vehicle::Chunk { task_id, chunk } => HashMap::from([
            ("pk".into(), s(task_pk(task_id))),
            ("sk".into(), s(format!("HANDOFF#{chunk:06}"))),
        ]),
        Vehicle::Start { task_id, lane } => HashMap::from([
            ("pk".into(), s(task_pk(task_id))),
            ("sk".into(), s(format!("START#{lane:03}"))),
        ]),
    }
}

fn encode(handoff: Handoff) -> String {
    match handoff {
        Handoff::Seq(seq) => format!("seq:{seq}"),
        Handoff::End => "end".into(),
    }
}

fn decode(text: &str) -> Result<Handoff, StoreError> {
    match text {
        "end" => Ok(Handoff::End),
        _ => text
            .strip_prefix("seq:")
            .and_then(|n| n.parse().ok())
            .map(Handoff::Seq)
            .ok_or_else(|| corrupt("handoff")),
    }
}

fn state_of(item: &Item) -> LaneState {
    LaneState {
        next_seq: number(item, "next_seq"),
        cursor: number(item, "cursor"),
        lanes: number(item, "lanes"),
    }
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl DynamoLanes {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table {
                client,
                name: table.into(),
            },
            parallel_writes: PARALLEL_WRITES,
            runs: Default::default(),
        }
    }

    /// The run holding `seq`: from this process's cache, else the last run starting at or
    /// before it (one `Query`), or `None` if `seq` is past that run's end.
    async fn run_of(&self, owner: &str, seq: u64) -> Result<Option<Run>, StoreError> {
        let cached = self
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .find(owner, seq);
        if cached.is_some() {
            return Ok(cached);
        }
        let out = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(owner_pk(owner)))
            .expression_attribute_values(":from", s(segment_sk(0)))
            .expression_attribute_values(":to", s(segment_sk(seq)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.items().first() else {
            return Ok(None);
        };
        let first = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix("SEG#"))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| corrupt("sequence run key"))?;
        let task_id: TaskId = item
            .get("task_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| corrupt("sequence run task"))?;
        let run = Run {
            owner: owner.to_owned(),
            first,
            chunks: number(item, "chunks"),
            task_id,
        };
        if seq - run.first >= run.chunks {
            return Ok(None);
        }
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keep(run.clone());
        Ok(Some(run))
    }

    /// Another number of batch writes in flight (for the benchmark that compares them).
    pub fn with_parallel_writes(mut self, n: usize) -> Self {
        self.parallel_writes = n.max(1);
        self
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// The vehicle's record moves from `replacing` (nothing, or an expired chunk) to `to`.
    fn record_handoff(
        &self,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        to: Handoff,
        expires_at: OffsetDateTime,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(vehicle_key(vehicle)))
            .update_expression("SET #h = :to, #exp = if_not_exists(#exp, :exp)")
            .expression_attribute_names("#h", "handoff")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":to", s(encode(to)))
            .expression_attribute_values(":exp", n(expires_at.unix_timestamp()));
        update = match (replacing, vehicle) {
            (None, _) => update.condition_expression("attribute_not_exists(#h)"),
            // A chunk stored before hand-offs had items of their own has its record on the
            // chunk (`handoff_of` read it there): the new item starts without one.
            (Some(old), Vehicle::Chunk { .. }) => update
                .condition_expression("attribute_not_exists(#h) OR #h = :old")
                .expression_attribute_values(":old", s(encode(old))),
            (Some(old), Vehicle::Start { .. }) => update
                .condition_expression("#h = :old")
                .expression_attribute_values(":old", s(encode(old))),
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_error)?)
            .build())
    }

    /// Runs a transaction; `Ok(false)` when a condition failed (another writer was first).
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        Ok(self.table.transact(actions).await?.is_ok())
    }

    /// Runs a hand-off: `[state step, vehicle's record]`. When only the state's condition
    /// failed, the state it found comes back with the answer (it asked for it), so the lane can
    /// try again without reading.
    async fn hand_off(&self, actions: [TransactWriteItem; 2]) -> Result<LaneStep, StoreError> {
        Ok(match self.table.transact(actions.into()).await? {
            Ok(()) => LaneStep::Done,
            Err(cancelled) => match cancelled.item_at(0) {
                Some(state) if cancelled.fine_at(1) => LaneStep::Moved(state_of(state)),
                _ => LaneStep::Lost,
            },
        })
    }
}

#[async_trait]
impl LaneStore for DynamoLanes {
    #[tracing::instrument(skip_all, fields(chunks = chunks.len()))]
    async fn store_chunks(
        &self,
        chunks: &[ChunkMessage],
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(chunks.len());
        for c in chunks {
            let mut item = chunk_key(c.task_id, c.chunk);
            item.insert("packed".into(), deflated::pack(c)?);
            item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(build_error)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let batches: Vec<Vec<WriteRequest>> = requests
            .chunks(WRITES_PER_BATCH)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        let writes: Vec<_> = batches
            .into_iter()
            .map(|batch| self.table.write_batch(batch))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(self.parallel_writes)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn lane_state(&self, owner: &str) -> Result<LaneState, StoreError> {
        Ok(self
            .table
            .get(state_key(owner))
            .await?
            .as_ref()
            .map(state_of)
            .unwrap_or_default())
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
        let state = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(state_key(owner)))
            .update_expression(
                "SET #next = :next, #cursor = if_not_exists(#cursor, :zero), \
                 #lanes = if_not_exists(#lanes, :zero) + :open",
            )
            .condition_expression(
                "attribute_not_exists(#pk) OR (#next = :seen_next AND #lanes = :seen_lanes)",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#next", "next_seq")
            .expression_attribute_names("#cursor", "cursor")
            .expression_attribute_names("#lanes", "lanes")
            .expression_attribute_values(":next", n(seen.next_seq + u64::from(chunks)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":open", n(new_lanes))
            .expression_attribute_values(":seen_next", n(seen.next_seq))
            .expression_attribute_values(":seen_lanes", n(seen.lanes))
            .build()
            .map_err(build_error)?;
        let segment = Put::builder()
            .table_name(&self.table.name)
            .item("pk", s(owner_pk(owner)))
            .item("sk", s(segment_sk(seen.next_seq)))
            .item("task_id", s(task_id.to_string()))
            .item("chunks", n(chunks))
            .item("expires_at", n(expires_at.unix_timestamp()))
            .build()
            .map_err(build_error)?;
        self.transact(vec![
            TransactWriteItem::builder().update(state).build(),
            TransactWriteItem::builder().put(segment).build(),
        ])
        .await
    }

    async fn handoff_of(&self, vehicle: Vehicle) -> Result<Option<Handoff>, StoreError> {
        let recorded = |item: &Item| item.get("handoff").and_then(|v| v.as_s().ok()).cloned();
        let mut found = self
            .table
            .get(vehicle_key(vehicle))
            .await?
            .as_ref()
            .and_then(recorded);
        // A chunk stored before hand-offs had items of their own keeps its record on itself.
        // Only a redelivered chunk asks, so the second read is rare.
        if let (None, Vehicle::Chunk { task_id, chunk }) = (&found, vehicle) {
            let items = self
                .table
                .batch_get(vec![chunk_key(task_id, chunk)], Some("handoff"))
                .await?;
            found = items.iter().find_map(recorded);
        }
        found.as_deref().map(decode).transpose()
    }

    async fn claim(
        &self,
        owner: &str,
        cursor: u64,
        vehicle: Vehicle,
        replacing: Option<Handoff>,
        expires_at: OffsetDateTime,
    ) -> Result<LaneStep, StoreError> {
        let state = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(state_key(owner)))
            .update_expression("SET #cursor = :after")
            .condition_expression("#cursor = :cursor AND #next > :cursor")
            .expression_attribute_names("#cursor", "cursor")
            .expression_attribute_names("#next", "next_seq")
            .expression_attribute_values(":cursor", n(cursor))
            .expression_attribute_values(":after", n(cursor + 1))
            .return_values_on_condition_check_failure(AllOld)
            .build()
            .map_err(build_error)?;
        self.hand_off([
            TransactWriteItem::builder().update(state).build(),
            self.record_handoff(vehicle, replacing, Handoff::Seq(cursor), expires_at)?,
        ])
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
        let state = if uncount {
            let update = Update::builder()
                .table_name(&self.table.name)
                .set_key(Some(state_key(owner)))
                .update_expression("SET #lanes = #lanes - :one")
                .condition_expression("#cursor = :cursor AND #next = :cursor AND #lanes > :zero")
                .expression_attribute_names("#lanes", "lanes")
                .expression_attribute_names("#cursor", "cursor")
                .expression_attribute_names("#next", "next_seq")
                .expression_attribute_values(":cursor", n(cursor))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0))
                .return_values_on_condition_check_failure(AllOld)
                .build()
                .map_err(build_error)?;
            TransactWriteItem::builder().update(update).build()
        } else {
            // An uncounted lane (see usecases::schedule) closes without touching the count;
            // a caller with no state at all has nothing to take either.
            let check = ConditionCheck::builder()
                .table_name(&self.table.name)
                .set_key(Some(state_key(owner)))
                .condition_expression(
                    "attribute_not_exists(#pk) OR (#cursor = :cursor AND #next = :cursor)",
                )
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#cursor", "cursor")
                .expression_attribute_names("#next", "next_seq")
                .expression_attribute_values(":cursor", n(cursor))
                .return_values_on_condition_check_failure(AllOld)
                .build()
                .map_err(build_error)?;
            TransactWriteItem::builder().condition_check(check).build()
        };
        self.hand_off([
            state,
            self.record_handoff(vehicle, replacing, Handoff::End, expires_at)?,
        ])
        .await
    }

    async fn chunk_at(&self, owner: &str, seq: u64) -> Result<Option<ChunkMessage>, StoreError> {
        let Some(Run { first, task_id, .. }) = self.run_of(owner, seq).await? else {
            return Ok(None);
        };
        let Some(item) = self
            .table
            .get(chunk_key(task_id, (seq - first) as u32))
            .await?
        else {
            return Ok(None);
        };
        if let Some(packed) = item.get("packed") {
            return deflated::unpack(packed, "waiting chunk").map(Some);
        }
        // A chunk stored before chunks were deflated.
        let body = item
            .get("body")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt("waiting chunk"))?;
        serde_json::from_str(body)
            .map(Some)
            .map_err(|_| corrupt("waiting chunk body"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoffs_round_trip() {
        for h in [Handoff::End, Handoff::Seq(0), Handoff::Seq(123_456)] {
            assert_eq!(decode(&encode(h)).unwrap(), h);
        }
        assert!(decode("seq:x").is_err());
    }

    #[test]
    fn a_cached_run_answers_for_its_own_seqs_only() {
        // Given a run of 10 chunks of alice's from seq 100, and one of bob's
        let mut cache = RunCache::default();
        let task = TaskId::new_random();
        let run = |owner: &str, first| Run {
            owner: owner.to_owned(),
            first,
            chunks: 10,
            task_id: task,
        };
        cache.keep(run("alice", 100));
        cache.keep(run("bob", 0));

        // Then it answers for seqs 100..110 of alice's, and for nothing else
        assert!(cache.find("alice", 100).is_some());
        assert_eq!(cache.find("alice", 109).map(|r| r.first), Some(100));
        assert!(cache.find("alice", 110).is_none());
        assert!(cache.find("alice", 99).is_none());
        assert!(cache.find("bob", 5).is_some_and(|r| r.owner == "bob"));

        // And it keeps a bounded number, dropping the oldest first
        for i in 0..RunCache::KEPT as u64 {
            cache.keep(run("carol", 1_000 * i));
        }
        assert!(cache.find("alice", 100).is_none());
        assert!(cache.find("carol", 0).is_some());
    }

    #[test]
    fn run_keys_sort_by_position() {
        assert!(segment_sk(9) < segment_sk(10));
        assert!(segment_sk(999_999) < segment_sk(1_000_000));
    }
}
