//! The work queue in memory: what would have been sent, deduplicated by id as SQS does.

use super::lock;
use crate::chunk::WorkMessage;
use crate::ports::*;
use async_trait::async_trait;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// A FIFO of what would have been sent, with SQS's deduplication by id; can be switched
/// "down" to test send failures.
#[derive(Default)]
pub struct MemoryQueue {
    queued: Mutex<VecDeque<WorkMessage>>,
    sent: Mutex<Vec<WorkMessage>>,
    dedup_ids: Mutex<HashSet<String>>,
    down: AtomicBool,
    send_calls: AtomicUsize,
}

impl MemoryQueue {
    /// Every message ever accepted, in order.
    pub fn sent(&self) -> Vec<WorkMessage> {
        lock(&self.sent).clone()
    }
    /// Takes the oldest message off the queue (as a consumer would receive and delete it).
    pub fn pop(&self) -> Option<WorkMessage> {
        lock(&self.queued).pop_front()
    }
    /// Messages waiting in the queue.
    pub fn pending(&self) -> usize {
        lock(&self.queued).len()
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    /// `SendMessageBatch` calls the SQS adapter would make (10 messages each).
    pub fn batch_calls(&self) -> usize {
        self.send_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn enqueue(&self, messages: &[WorkMessage]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::new("memory queue is down"));
        }
        self.send_calls
            .fetch_add(messages.len().div_ceil(10), Ordering::SeqCst);
        for m in messages {
            if lock(&self.dedup_ids).insert(m.deduplication_id()) {
                lock(&self.queued).push_back(m.clone());
                lock(&self.sent).push(m.clone());
            }
        }
        Ok(())
    }

    async fn requeue(&self, message: &WorkMessage) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::new("memory queue is down"));
        }
        self.send_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.queued).push_back(message.clone());
        lock(&self.sent).push(message.clone());
        Ok(())
    }
}
