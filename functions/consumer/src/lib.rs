//! The consumer function: each SQS message is one chunk of a task; each item goes through
//! the same create path as `POST /beneficiaries`, and outcomes land in the task store.

use aws_adapters::sqs_batch::process_fifo_batch;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tasks_core::chunk::ChunkMessage;
use tasks_core::config::Settings;
use tasks_core::ports::{BeneficiaryBackend, TaskStore};
use tasks_core::usecases::process_chunk::process_chunk_limited;
use tokio::sync::Semaphore;

pub struct Consumer {
    pub store: Arc<dyn TaskStore>,
    pub backend: Arc<dyn BeneficiaryBackend>,
    pub settings: Settings,
}

/// The invocation deadline (epoch milliseconds) as an `Instant`.
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

impl Consumer {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id, messages = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = deadline_instant(event.context.deadline);
        // One limit for the whole invocation: chunks of different message groups run at once
        // and share `BOS_CONCURRENCY` calls.
        let bos_limit = Semaphore::new(self.settings.bos_concurrency);
        let bos_limit = &bos_limit;
        process_fifo_batch(&event.payload.records, |body| async move {
            let chunk: ChunkMessage = serde_json::from_str(&body)
                .map_err(|e| format!("undecodable chunk at line {} column {}", e.line(), e.column()))?;
            process_chunk_limited(self.store.as_ref(), self.backend.as_ref(), &self.settings, &chunk, deadline, bos_limit)
                .await
                .map(|report| {
                    tracing::info!(task_id = %chunk.task_id, chunk = chunk.chunk, recorded = report.recorded,
                        skipped = report.skipped, finished = ?report.finished.map(|s| s.as_str()), "chunk done");
                })
                .map_err(|e| e.to_string())
        })
        .await
    }
}
