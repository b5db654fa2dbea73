//! Chunks: how a task's items travel through the work queue. A task of N items becomes
//! ⌈N / chunk_size⌉ messages; each knows its task and the original index of every item, so
//! outcomes land on the right item whatever order chunks are processed in.

use crate::beneficiary::Beneficiary;
use crate::task::{TaskId, TaskType};
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
    pub items: Vec<ChunkItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkItem {
    /// 0-based index of the item in the client's original array.
    pub index: u32,
    pub beneficiary: Beneficiary,
}

impl ChunkMessage {
    /// SQS FIFO deduplication id: a retried enqueue of the same chunk is dropped by SQS.
    pub fn deduplication_id(&self) -> String {
        format!("{}:{}", self.task_id, self.chunk)
    }

    /// Chunks of one task are spread over `groups` message groups: SQS FIFO runs one message
    /// per group at a time, so more groups let a large task use more consumers at once, while
    /// chunks within one group stay in order.
    pub fn group_id(&self, groups: u32) -> String {
        format!("{}:{}", self.task_id, self.chunk % groups.max(1))
    }

    pub fn indexes(&self) -> Vec<u32> {
        self.items.iter().map(|i| i.index).collect()
    }
}

/// Splits validated items into chunk messages of at most `chunk_size` items, in order.
pub fn split(
    task_id: TaskId,
    task_type: TaskType,
    items: Vec<Beneficiary>,
    chunk_size: usize,
) -> Vec<ChunkMessage> {
    let size = chunk_size.clamp(1, MAX_CHUNK_SIZE);
    let mut chunks: Vec<ChunkMessage> = Vec::with_capacity(items.len().div_ceil(size));
    for (index, beneficiary) in items.into_iter().enumerate() {
        if index % size == 0 {
            chunks.push(ChunkMessage {
                task_id,
                task_type,
                chunk: (index / size) as u32,
                items: Vec::with_capacity(size),
            });
        }
        if let Some(current) = chunks.last_mut() {
            current.items.push(ChunkItem {
                index: index as u32,
                beneficiary,
            });
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
            let chunks = split(id, TaskType::BENEFICIARIES_IMPORT, items(n), size);
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
            TaskType::BENEFICIARIES_IMPORT,
            items(250),
            500,
        );
        assert_eq!(chunks[0].items.len(), MAX_CHUNK_SIZE);
    }

    #[test]
    fn dedup_and_group_ids() {
        let id = TaskId::new_random();
        let chunks = split(id, TaskType::BENEFICIARIES_IMPORT, items(5), 1);
        assert_eq!(chunks[3].deduplication_id(), format!("{id}:3"));
        assert_eq!(chunks[3].group_id(2), format!("{id}:1"));
        assert_eq!(chunks[3].group_id(0), format!("{id}:0"));
    }
}
