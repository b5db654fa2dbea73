//! Live progress in memory: connections and what they watch, and a pusher that keeps frames.

use super::{lock, MemoryStore};
use crate::identity::Owner;
use crate::live_progress::ConnectionId;
use crate::live_progress::MAX_SUBSCRIPTIONS;
use crate::ports::*;
use crate::task::TaskId;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Mutex;
use time::OffsetDateTime;

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put_connection(
        &self,
        id: &ConnectionId,
        owner: &Owner,
        _expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        lock(&self.connections).insert(id.clone(), (owner.clone(), BTreeSet::new()));
        Ok(())
    }

    async fn watched_tasks(&self, id: &ConnectionId) -> Result<Option<Vec<TaskId>>, StoreError> {
        Ok(lock(&self.connections)
            .get(id)
            .map(|(_, tasks)| tasks.iter().copied().collect()))
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), StoreError> {
        lock(&self.connections).remove(id);
        Ok(())
    }

    async fn subscribe(
        &self,
        id: &ConnectionId,
        task: TaskId,
        _expires_at: OffsetDateTime,
    ) -> Result<Subscribed, StoreError> {
        let mut connections = lock(&self.connections);
        let Some((_, tasks)) = connections.get_mut(id) else {
            return Ok(Subscribed::NoConnection);
        };
        if !tasks.contains(&task) && tasks.len() >= MAX_SUBSCRIPTIONS {
            return Ok(Subscribed::TooMany);
        }
        tasks.insert(task);
        Ok(Subscribed::Yes)
    }

    async fn unsubscribe(&self, id: &ConnectionId, task: TaskId) -> Result<(), StoreError> {
        if let Some((_, tasks)) = lock(&self.connections).get_mut(id) {
            tasks.remove(&task);
        }
        Ok(())
    }

    async fn subscribers(&self, task: TaskId) -> Result<Vec<ConnectionId>, StoreError> {
        Ok(lock(&self.connections)
            .iter()
            .filter(|(_, (_, tasks))| tasks.contains(&task))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn claim_final(&self, id: &ConnectionId, task: TaskId) -> Result<bool, StoreError> {
        Ok(lock(&self.connections)
            .get_mut(id)
            .is_some_and(|(_, tasks)| tasks.remove(&task)))
    }
}

/// Frames pushed, per connection, in order; connections marked gone answer `Gone`.
#[derive(Default)]
pub struct MemoryPusher {
    frames: Mutex<BTreeMap<ConnectionId, Vec<String>>>,
    gone: Mutex<BTreeSet<ConnectionId>>,
}

impl MemoryPusher {
    pub fn frames(&self, id: &ConnectionId) -> Vec<serde_json::Value> {
        lock(&self.frames)
            .get(id)
            .into_iter()
            .flatten()
            .map(|f| serde_json::from_str(f).unwrap_or_default())
            .collect()
    }

    pub fn close(&self, id: &ConnectionId) {
        lock(&self.gone).insert(id.clone());
    }
}

#[async_trait]
impl FramePusher for MemoryPusher {
    async fn push(&self, id: &ConnectionId, frame: &str) -> Result<(), PushError> {
        if lock(&self.gone).contains(id) {
            return Err(PushError::Gone);
        }
        lock(&self.frames)
            .entry(id.clone())
            .or_default()
            .push(frame.to_owned());
        Ok(())
    }
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn put_ticket(
        &self,
        key: &crate::live_ticket::TicketKey,
        owner: &Owner,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        lock(&self.tickets).insert(key.clone(), (owner.clone(), expires_at));
        Ok(())
    }

    async fn take_ticket(
        &self,
        key: &crate::live_ticket::TicketKey,
        now: OffsetDateTime,
    ) -> Result<Option<Owner>, StoreError> {
        let taken = lock(&self.tickets).remove(key);
        Ok(taken.and_then(|(owner, expires_at)| (expires_at > now).then_some(owner)))
    }
}
