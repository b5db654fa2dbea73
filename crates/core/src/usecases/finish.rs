//! Moving a task to its final state once every item has an outcome. Whoever records the last
//! outcome calls this; the conditional transition lets exactly one caller win.

use crate::ports::{StoreError, TaskStore};
use crate::task::{TaskId, TaskStatus};
use std::time::Duration;
use time::OffsetDateTime;

pub async fn finish_if_complete(
    store: &dyn TaskStore,
    id: TaskId,
    now: OffsetDateTime,
    retention: Duration,
) -> Result<Option<TaskStatus>, StoreError> {
    let Some(task) = store.get_task(id).await? else {
        return Ok(None);
    };
    let Some(next) = task.completion_status() else {
        return Ok(None);
    };
    let won = store
        .transition(id, task.status, next, now, Some(now + retention))
        .await?;
    if won {
        let duration = (now - task.created_at).as_seconds_f64() * 1e3;
        crate::metrics::MetricSet::new()
            .dimension("TaskType", task.task_type.slug())
            .dimension("Status", next.as_str())
            .count("TasksFinished", 1)
            .millis("TaskDuration", vec![duration])
            .emit();
        tracing::info!(task_id = %id, status = next.as_str(), total = task.total,
            succeeded = task.succeeded, failed = task.failed, "task finished");
    }
    Ok(won.then_some(next))
}
