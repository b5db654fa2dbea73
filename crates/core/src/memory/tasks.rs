//! The task store in memory: tasks, their outcomes and counters, one lock each.

use super::{lock, MemoryStore};
use crate::identity::Owner;
use crate::outcome::ItemOutcome;
use crate::outcome::Tally;
use crate::ports::*;
use crate::task::Task;
use crate::task::TaskId;
use crate::task::TaskStatus;
use crate::task::TaskType;
use crate::upload::Validation;
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

#[async_trait]
impl TaskStore for MemoryStore {
    async fn insert_task(&self, task: &Task) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.put(task.clone());
        Ok(())
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        Ok(self.get(id))
    }

    async fn delete_task(&self, id: TaskId) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        lock(&self.tasks).remove(&id);
        Ok(())
    }

    async fn transition(
        &self,
        id: TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&id) else {
            return Ok(false);
        };
        if task.status != from || !from.can_become(to) {
            return Ok(false);
        }
        task.status = to;
        task.updated_at = now;
        if from == TaskStatus::AwaitingUpload {
            // The open session's expiry ends with it.
            task.expires_at = None;
        }
        if matches!(to, TaskStatus::Running | TaskStatus::Validating) {
            task.started_at.get_or_insert(now);
        }
        if to.is_final() {
            task.finished_at = Some(now);
            task.expires_at = expires_at;
        }
        Ok(true)
    }

    async fn final_items(&self, id: TaskId, indexes: &[u32]) -> Result<HashSet<u32>, StoreError> {
        let outcomes = lock(&self.outcomes);
        Ok(indexes
            .iter()
            .copied()
            .filter(|i| outcomes.contains_key(&(id, *i)))
            .collect())
    }

    /// As the DynamoDB store reads it: the breaker comes with the task.
    async fn chunk_state(
        &self,
        id: TaskId,
        indexes: &[u32],
    ) -> Result<Option<ChunkState>, StoreError> {
        let breaker = lock(&self.breaker).clone();
        ChunkState::read_in_parts(self, id, indexes, Some(breaker)).await
    }

    async fn record_outcomes(
        &self,
        id: TaskId,
        new: &[ItemOutcome],
        total: Option<u32>,
        now: OffsetDateTime,
        _expires_at: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let mut outcomes = lock(&self.outcomes);
        if new.iter().any(|o| outcomes.contains_key(&(id, o.index))) {
            return Ok(Recorded::Conflict);
        }
        let Some(task) = tasks.get_mut(&id) else {
            return Err(StoreError::permanent("task not found"));
        };
        let tally = Tally::of(new);
        task.succeeded += tally.succeeded;
        task.failed += tally.failed;
        task.cancelled += tally.cancelled;
        task.not_attempted += tally.not_attempted;
        for o in new {
            outcomes.insert((id, o.index), o.clone());
        }
        task.updated_at = now;
        Ok(Recorded::All {
            may_complete: total.is_none_or(|total| task.processed() >= total),
        })
    }

    async fn set_waiting(
        &self,
        id: TaskId,
        since: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = lock(&self.tasks).get_mut(&id) {
            task.waiting_since = since.map(|s| task.waiting_since.unwrap_or(s));
        }
        Ok(())
    }

    async fn mark_retried(&self, id: TaskId, by: TaskId) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        match tasks.get_mut(&id) {
            Some(task) if task.retried_by.is_none() => {
                task.retried_by = Some(by);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unmark_retried(&self, id: TaskId, by: TaskId) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = lock(&self.tasks).get_mut(&id) {
            if task.retried_by == Some(by) {
                task.retried_by = None;
            }
        }
        Ok(())
    }

    async fn save_validation(
        &self,
        id: TaskId,
        seen: &Validation,
        next: &Validation,
        now: OffsetDateTime,
    ) -> Result<Option<Task>, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        match tasks.get_mut(&id) {
            Some(task) if task.validation == *seen => {
                task.validation = *next;
                task.updated_at = now;
                Ok(Some(task.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn end_validation(
        &self,
        id: TaskId,
        end: &ValidationEnd,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&id) else {
            return Ok(false);
        };
        if task.status != TaskStatus::Validating || !task.status.can_become(end.to) {
            return Ok(false);
        }
        task.status = end.to;
        task.total = end.total;
        task.cancelled += end.cancelled;
        task.not_attempted += end.not_attempted;
        task.validation = end.validation;
        task.rejection.clone_from(&end.rejection);
        task.updated_at = now;
        if end.to.is_final() {
            task.finished_at = Some(now);
            task.expires_at = end.expires_at;
        }
        Ok(true)
    }

    async fn mark_result_files(&self, id: TaskId) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = lock(&self.tasks).get_mut(&id) {
            task.result_files = true;
        }
        Ok(())
    }

    async fn request_cancel(
        &self,
        id: TaskId,
        now: OffsetDateTime,
    ) -> Result<CancelOutcome, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&id) else {
            return Ok(CancelOutcome::NotFound);
        };
        if task.status.is_final() {
            return Ok(CancelOutcome::AlreadyFinal(task.clone()));
        }
        task.cancel_requested_at.get_or_insert(now);
        task.updated_at = now;
        Ok(CancelOutcome::Requested(task.clone()))
    }

    async fn list_tasks(
        &self,
        owner: &Owner,
        task_type: TaskType,
        status: Option<TaskStatus>,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<(Vec<Task>, bool), StoreError> {
        let tasks = lock(&self.tasks);
        let mut mine: Vec<&Task> = tasks
            .values()
            .filter(|t| &t.owner == owner && t.task_type == task_type && !t.is_expired(now))
            .filter(|t| status.is_none_or(|s| t.status == s))
            .filter(|t| after.is_none_or(|a| t.list_position().as_str() < a))
            .collect();
        mine.sort_by_key(|t| std::cmp::Reverse(t.list_position()));
        let more = mine.len() > limit;
        Ok((mine.into_iter().take(limit).cloned().collect(), more))
    }

    async fn list_outcomes(
        &self,
        id: TaskId,
        filter: OutcomeFilter,
        after: Option<u32>,
        limit: usize,
    ) -> Result<(Vec<ItemOutcome>, bool), StoreError> {
        let outcomes = lock(&self.outcomes);
        let start = after.map_or(0, |a| a + 1);
        let mut matching = outcomes
            .range((id, start)..=(id, u32::MAX))
            .map(|(_, o)| o)
            .filter(|o| filter.keeps(o));
        let page: Vec<ItemOutcome> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        Ok((page, more))
    }
}
