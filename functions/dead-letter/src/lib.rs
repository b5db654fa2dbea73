//! The dead-letter function: messages SQS gave up on (after `maxReceiveCount` receives) end
//! here; their unfinished items become `processing_failed` and their task is finished.

use aws_adapters::sqs_batch::process_fifo_batch;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::chunk::ChunkMessage;
use tasks_core::config::Settings;
use tasks_core::ports::TaskStore;
use tasks_core::usecases::dead_letter::fail_chunk;

pub struct DeadLetter {
    pub store: Arc<dyn TaskStore>,
    pub settings: Settings,
}

impl DeadLetter {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id, messages = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        process_fifo_batch(&event.payload.records, |body| async move {
            let chunk: ChunkMessage = match serde_json::from_str(&body) {
                Ok(c) => c,
                Err(e) => {
                    // Nothing can ever process it; keeping it would block its group. The DLQ
                    // alarm and this line are how an operator learns about it.
                    tracing::error!(
                        line = e.line(),
                        column = e.column(),
                        "undecodable dead letter dropped"
                    );
                    return Ok(());
                }
            };
            fail_chunk(self.store.as_ref(), &self.settings, &chunk)
                .await
                .map(|(failed, finished)| {
                    tracing::info!(task_id = %chunk.task_id, chunk = chunk.chunk, failed,
                        finished = ?finished.map(|s| s.as_str()), "dead chunk settled");
                })
                .map_err(|e| e.to_string())
        })
        .await
    }
}
