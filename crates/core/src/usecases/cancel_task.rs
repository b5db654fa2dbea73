//! `DELETE /tasks/{task_type}/{task_id}`: ask a task to stop. Items not yet started end
//! `cancelled` as their chunks come up; items already in flight finish normally; the task
//! becomes `cancelled` once nothing is left. A final task cannot be cancelled (409).

use crate::error::AppError;
use crate::identity::Owner;
use crate::ports::{CancelOutcome, TaskStore};
use crate::task::{Task, TaskId, TaskStatus, TaskType};
use crate::usecases::read_task::get_task;
use time::OffsetDateTime;

pub async fn cancel_task(
    store: &dyn TaskStore,
    owner: &Owner,
    task_type: TaskType,
    id: TaskId,
    now: OffsetDateTime,
    retention: std::time::Duration,
) -> Result<Task, AppError> {
    // Ownership, type and expiry first: another caller's task is "not found", not "final".
    get_task(store, owner, task_type, id, now).await?;
    match store.request_cancel(id, now).await? {
        // Nothing runs for a task that awaits its file: it ends at once.
        CancelOutcome::Requested(task) if task.status == TaskStatus::AwaitingUpload => {
            let expires_at = now + retention;
            store
                .transition(
                    id,
                    TaskStatus::AwaitingUpload,
                    TaskStatus::Cancelled,
                    now,
                    Some(expires_at),
                )
                .await?;
            tracing::info!(task_id = %id, "upload session cancelled");
            get_task(store, owner, task_type, id, now).await
        }
        CancelOutcome::Requested(task) => {
            tracing::info!(task_id = %id, "cancellation requested");
            Ok(task)
        }
        CancelOutcome::AlreadyFinal(_) => Err(AppError::TaskAlreadyFinal),
        CancelOutcome::NotFound => Err(AppError::TaskNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    #[tokio::test]
    async fn cancel_rules() {
        let store = MemoryStore::default();
        let alice = Owner::from_subject("alice").unwrap();
        let bob = Owner::from_subject("bob").unwrap();
        let now = OffsetDateTime::now_utc();
        let t = Task::new(TaskType::BeneficiariesImport, alice.clone(), 1, now);
        store.insert_task(&t).await.unwrap();

        let err = cancel_task(&store, &bob, t.task_type, t.id, now, DAY)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "task_not_found");
        let first = cancel_task(&store, &alice, t.task_type, t.id, now, DAY)
            .await
            .unwrap();
        assert_eq!(first.cancel_requested_at, Some(now));
        let again = cancel_task(&store, &alice, t.task_type, t.id, now, DAY)
            .await
            .unwrap();
        assert_eq!(
            again.cancel_requested_at,
            Some(now),
            "repeating is harmless"
        );

        let mut done = Task::new(TaskType::BeneficiariesImport, alice.clone(), 1, now);
        done.status = TaskStatus::Completed;
        store.insert_task(&done).await.unwrap();
        let err = cancel_task(&store, &alice, done.task_type, done.id, now, DAY)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "task_already_final");
    }
}
