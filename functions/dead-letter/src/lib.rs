//! The dead-letter function: messages SQS gave up on (after `maxReceiveCount` receives) end
//! here (`usecases::dead_letter`): a dead chunk hands its lane on and its unfinished items
//! become `processing_failed`; a dead lane start sends its chunk back to the work queue.

use aws_adapters::sqs_batch::{process_fifo_batch, Undecodable};
use aws_adapters::startup::invocation_trace;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::chunk::WorkMessage;
use tasks_core::config::Settings;
use tasks_core::ports::{LaneStore, TaskStore, WorkQueue};
use tasks_core::trace;
use tasks_core::usecases::dead_letter::settle;
use tasks_core::usecases::process_chunk::ChunkError;

pub struct DeadLetter {
    pub store: Arc<dyn TaskStore>,
    pub lanes: Arc<dyn LaneStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub settings: Settings,
}

impl DeadLetter {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, messages = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let run = |message: WorkMessage, _| async move {
            let settled = settle(
                self.store.as_ref(),
                self.lanes.as_ref(),
                self.queue.as_ref(),
                &self.settings,
                &message,
            )
            .await?;
            tracing::info!(
                failed = settled.failed,
                requeued = settled.requeued,
                finished = ?settled.finished.map(|s| s.as_str()),
                "dead letter settled"
            );
            Ok::<(), ChunkError>(())
        };
        // Nothing is behind the dead-letter queue: a message no code can read is logged (and
        // the DLQ alarm has fired) rather than left to block its group.
        // What a message runs in when it carries no trace of its own.
        let invocation = invocation_trace(&event.context);
        let batch = process_fifo_batch(&event.payload.records, Undecodable::Drop, run);
        trace::within(invocation, batch).await
    }
}
