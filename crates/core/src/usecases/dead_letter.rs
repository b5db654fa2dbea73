//! The dead-letter function's work: a chunk that kept failing until SQS gave up on it. Its
//! items without an outcome end `processing_failed`, and the task is finished if that was
//! the last work it had, so no task waits forever. Replaying it changes nothing.

use crate::chunk::ChunkMessage;
use crate::config::Settings;
use crate::error::ErrorDetail;
use crate::metrics::MetricSet;
use crate::ports::{ItemOutcome, OutcomeResult, StoreError, TaskStore};
use crate::task::TaskStatus;
use crate::usecases::finish::finish_if_complete;
use crate::usecases::process_chunk::record;
use time::OffsetDateTime;

pub const PROCESSING_FAILED: &str = "processing_failed";

#[tracing::instrument(skip_all, fields(task_id = %msg.task_id, chunk = msg.chunk))]
pub async fn fail_chunk(
    store: &dyn TaskStore,
    settings: &Settings,
    msg: &ChunkMessage,
) -> Result<(usize, Option<TaskStatus>), StoreError> {
    if store.get_task(msg.task_id).await?.is_none() {
        tracing::warn!("dead chunk of an unknown task dropped");
        return Ok((0, None));
    }
    let done = store.final_items(msg.task_id, &msg.indexes()).await?;
    let outcomes: Vec<ItemOutcome> = msg
        .items
        .iter()
        .filter(|i| !done.contains(&i.index))
        .map(|i| {
            let external_id = i.beneficiary.external_id().map(str::to_owned);
            let error = ErrorDetail {
                index: None,
                external_id: None,
                field: None,
                code: PROCESSING_FAILED.into(),
                message: "The item could not be processed after repeated attempts.".into(),
            }
            .at(i.index, external_id.as_deref());
            ItemOutcome {
                index: i.index,
                external_id,
                result: OutcomeResult::Failed { error },
            }
        })
        .collect();
    let failed = record(store, msg, outcomes, settings).await?.total();
    MetricSet::new()
        .dimension("TaskType", msg.task_type.slug())
        .count("DeadChunks", 1)
        .count("ItemsFailed", failed as u64)
        .emit();
    if failed > 0 {
        tracing::warn!(
            items = failed,
            "dead chunk's items marked processing_failed"
        );
    }
    let finished = finish_if_complete(
        store,
        msg.task_id,
        OffsetDateTime::now_utc(),
        settings.retention,
    )
    .await?;
    Ok((failed, finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{later, stored_task};
    use crate::memory::{MemoryBackend, MemoryStore};
    use crate::task::TaskType;
    use crate::usecases::process_chunk::process_chunk;

    #[tokio::test]
    async fn dead_chunk_fails_its_pending_items_and_finishes_the_task() {
        let store = MemoryStore::default();
        let ibans = ["DE89370400440532013000"; 6];
        let (task, chunks) = stored_task(&store, TaskType::BENEFICIARIES_IMPORT, &ibans, 3).await;
        let s = Settings::default();
        process_chunk(&store, &MemoryBackend::default(), &s, &chunks[0], later())
            .await
            .unwrap();

        let (failed, finished) = fail_chunk(&store, &s, &chunks[1]).await.unwrap();
        assert_eq!(
            (failed, finished),
            (3, Some(TaskStatus::CompletedWithErrors))
        );
        // A redrive of either chunk changes nothing.
        assert_eq!(fail_chunk(&store, &s, &chunks[0]).await.unwrap(), (0, None));
        assert_eq!(fail_chunk(&store, &s, &chunks[1]).await.unwrap(), (0, None));
        let t = store.get(task.id).unwrap();
        assert_eq!((t.succeeded, t.failed), (3, 3));
    }
}
