//! Chunks: how a task's items travel through the work queue. A task of N items becomes
//! ⌈N / chunk_size⌉ chunks; each knows its task and the original index of every item, so
//! outcomes land on the right item whatever order chunks are processed in.
//!
//! Chunks wait in the task store and reach the queue a few at a time, as the owner's lanes
//! take them (`usecases::schedule`). A queue message is either a chunk or a [`LaneStart`],
//! which opens a lane for a caller that had none; [`WorkMessage`] is the body of both.

use crate::beneficiary::Beneficiary;
use crate::task::{TaskId, TaskType};
use crate::trace::{Trace, Traced};
use serde::{Deserialize, Serialize};

/// The most items a chunk may hold: a chunk's outcomes are recorded in one DynamoDB
/// transaction of at most 100 actions, one of which moves the task's counters.
pub const MAX_CHUNK_SIZE: usize = 99;

/// One work-queue message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkMessage {
    pub task_id: TaskId,
    pub task_type: TaskType,
    /// 0-based position of the chunk in its task.
    pub chunk: u32,
    /// The owner's scheduling key (a hash, never the subject): whose lanes this chunk travels
    /// in. Absent only in messages from before lanes existed, which then hand nothing on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The trace of the request that created the task: every BOS call for these items carries
    /// it, whichever consumer takes the chunk and however often it comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    pub items: Vec<ChunkItem>,
}

/// Opens one lane for a caller: the consumer that receives it takes the caller's next chunk
/// and works on it in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneStart {
    /// The owner's scheduling key.
    pub owner: String,
    /// The task whose submission opened the lane (it names the message, nothing more: the
    /// lane takes whatever chunk of the owner is next).
    pub task_id: TaskId,
    pub lane: u32,
    /// The owner's `next_seq` once the submission that sent this start has appended its
    /// chunks. Starts are sent before that append (see `usecases::schedule`), so a start that
    /// finds the sequence shorter waits for the append instead of closing its lane.
    #[serde(default)]
    pub appended_until: u64,
    /// The trace of the submission that opened the lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

/// The body of a work-queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkMessage {
    Start {
        start: LaneStart,
    },
    /// A chunk back from the dead-letter queue: each item still without an outcome gets one
    /// more BOS call with its own idempotency key, and then an outcome whatever the answer.
    /// `round` counts settles of this chunk that died too (a crashing consumer, say).
    Settle {
        settle: ChunkMessage,
        #[serde(default)]
        round: u32,
    },
    Chunk(ChunkMessage),
}

impl WorkMessage {
    /// SQS FIFO deduplication id: a retried send of the same message is dropped by SQS.
    pub fn deduplication_id(&self) -> String {
        match self {
            Self::Start { start } => format!("{}:start:{}", start.task_id, start.lane),
            Self::Settle { settle: c, round } => {
                format!("{}:{}:settle:{round}", c.task_id, c.chunk)
            }
            Self::Chunk(c) => format!("{}:{}", c.task_id, c.chunk),
        }
    }

    /// Every message is a message group of its own. Chunks need no order among them (an item
    /// already final is skipped), and fairness comes from how few of a caller's chunks sit in
    /// the queue, not from groups: one group per message lets SQS hand any of them to any
    /// free consumer, and a failure holds back nothing but itself.
    pub fn group_id(&self) -> String {
        self.deduplication_id()
    }
}

impl Traced for WorkMessage {
    /// The trace the message travels in: its task's, or its submission's for a lane start.
    fn trace(&self) -> Option<&Trace> {
        match self {
            Self::Start { start } => start.trace.as_ref(),
            Self::Settle { settle: c, .. } | Self::Chunk(c) => c.trace.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkItem {
    /// 0-based index of the item in the client's original array (for a retry, in the original
    /// task's array).
    pub index: u32,
    pub beneficiary: Beneficiary,
    /// The idempotency key BOS sees for this item when it is not `{task_id}:{index}`: a retried
    /// item that may already exist at BOS sends the key of its first attempt, so BOS answers
    /// with what it did then instead of creating it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_key: Option<String>,
}

impl ChunkMessage {
    pub fn indexes(&self) -> Vec<u32> {
        self.items.iter().map(|i| i.index).collect()
    }

    /// The idempotency key BOS sees for `item` of this chunk.
    pub fn bos_key(&self, item: &ChunkItem) -> String {
        item.bos_key
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.task_id, item.index))
    }
}

/// Splits validated items into chunk messages of at most `chunk_size` items, in order, each
/// item indexed by its position.
pub fn split(
    task_id: TaskId,
    task_type: TaskType,
    owner: &str,
    items: Vec<Beneficiary>,
    chunk_size: usize,
) -> Vec<ChunkMessage> {
    split_items(task_id, task_type, owner, numbered(items), chunk_size)
}

/// A submission's items, each indexed by its position in the client's array.
pub fn numbered(items: Vec<Beneficiary>) -> Vec<ChunkItem> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, beneficiary)| ChunkItem {
            index: index as u32,
            beneficiary,
            bos_key: None,
        })
        .collect()
}

/// Splits items that already have their index (a retry keeps the original task's) into chunk
/// messages of at most `chunk_size` items, in order.
pub fn split_items(
    task_id: TaskId,
    task_type: TaskType,
    owner: &str,
    items: Vec<ChunkItem>,
    chunk_size: usize,
) -> Vec<ChunkMessage> {
    let size = chunk_size.clamp(1, MAX_CHUNK_SIZE);
    let mut chunks: Vec<ChunkMessage> = Vec::with_capacity(items.len().div_ceil(size));
    for (position, item) in items.into_iter().enumerate() {
        if position % size == 0 {
            chunks.push(ChunkMessage {
                task_id,
                task_type,
                chunk: (position / size) as u32,
                owner: Some(owner.to_owned()),
                trace: None,
                items: Vec::with_capacity(size),
            });
        }
        if let Some(current) = chunks.last_mut() {
            current.items.push(item);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items(n: usize) -> Vec<Beneficiary> {
        let b = Beneficiary::parse(&json!({"name": "A", "country": "DE", "currency": "EUR",
            "iban": "DE89370400440532013000"}))
        .unwrap();
        vec![b; n]
    }

    #[test]
    fn splits_keep_every_index_once_in_order() {
        let id = TaskId::new_random();
        for (n, size, expected_chunks) in [
            (1, 99, 1),
            (99, 99, 1),
            (100, 99, 2),
            (1000, 99, 11),
            (7, 3, 3),
        ] {
            let chunks = split(id, TaskType::BeneficiariesImport, "o", items(n), size);
            assert_eq!(chunks.len(), expected_chunks, "n={n} size={size}");
            let all: Vec<u32> = chunks.iter().flat_map(|c| c.indexes()).collect();
            assert_eq!(all, (0..n as u32).collect::<Vec<_>>());
            assert!(chunks.iter().all(|c| c.items.len() <= size));
            assert!(chunks.iter().enumerate().all(|(i, c)| c.chunk == i as u32));
        }
    }

    #[test]
    fn chunk_size_is_capped_for_the_transaction_limit() {
        let chunks = split(
            TaskId::new_random(),
            TaskType::BeneficiariesImport,
            "o",
            items(250),
            500,
        );
        assert_eq!(chunks[0].items.len(), MAX_CHUNK_SIZE);
    }

    #[test]
    fn dedup_and_group_ids() {
        let id = TaskId::new_random();
        let chunks = split(id, TaskType::BeneficiariesImport, "o", items(5), 1);
        let chunk = WorkMessage::Chunk(chunks[3].clone());
        assert_eq!(chunk.deduplication_id(), format!("{id}:3"));
        assert_eq!(chunk.group_id(), format!("{id}:3"));
        let start = WorkMessage::Start {
            start: LaneStart {
                owner: "o".into(),
                task_id: id,
                lane: 2,
                appended_until: 5,
                trace: None,
            },
        };
        assert_eq!(start.deduplication_id(), format!("{id}:start:2"));
    }

    #[test]
    fn bodies_decode_to_the_right_kind() {
        let id = TaskId::new_random();
        let chunk = split(id, TaskType::BeneficiariesImport, "o", items(2), 99).remove(0);
        let start = LaneStart {
            owner: "o".into(),
            task_id: id,
            lane: 0,
            appended_until: 1,
            trace: None,
        };
        for message in [WorkMessage::Chunk(chunk), WorkMessage::Start { start }] {
            let body = serde_json::to_string(&message).unwrap();
            assert_eq!(serde_json::from_str::<WorkMessage>(&body).unwrap(), message);
        }
        // A chunk from before lanes existed (no owner) still decodes.
        let legacy =
            json!({"task_id": id, "task_type": "beneficiaries-import", "chunk": 0, "items": []});
        assert!(matches!(
            serde_json::from_value::<WorkMessage>(legacy).unwrap(),
            WorkMessage::Chunk(ChunkMessage { owner: None, .. })
        ));
    }
}
