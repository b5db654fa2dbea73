//! The consumer function: each SQS message is a chunk of a task or a lane start
//! (`usecases::consume`); each item goes through the same create path as
//! `POST /beneficiaries`, and outcomes land in the task store.

use aws_adapters::sqs_batch::{process_fifo_batch, Undecodable};
use aws_adapters::startup::invocation_trace;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::breaker::Breaker;
use tasks_core::chunk::WorkMessage;
use tasks_core::config::Settings;
use tasks_core::ports::{BeneficiaryBackend, BreakerStore, LaneStore, TaskStore, WorkQueue};
use tasks_core::trace;
use tasks_core::usecases::consume::{consume, Ports};
use tasks_core::usecases::hand_off_turn::HandOffTurn;
use tasks_core::usecases::process_chunk::ChunkError;
use tasks_core::usecases::upstream_wait::Upstream;
use tokio::sync::Semaphore;

pub struct Consumer {
    pub store: Arc<dyn TaskStore>,
    pub lanes: Arc<dyn LaneStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub backend: Arc<dyn BeneficiaryBackend>,
    /// Where the breaker in front of BOS keeps its shared state.
    pub breakers: Arc<dyn BreakerStore>,
    /// This process's view of the breaker, which `backend` reports to: one per process, so
    /// every invocation it serves shares what the others saw.
    pub breaker: Arc<Breaker>,
    /// This process's turn for hand-offs, shared by the messages of its invocations.
    pub turn: HandOffTurn,
    pub settings: Settings,
}

impl Consumer {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, messages = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = aws_adapters::startup::deadline_instant(event.context.deadline);
        // One limit for the whole invocation: the messages of a batch run at once and share
        // this invocation's share of the BOS cap, so BOS never sees more than
        // consumers × share calls.
        let bos_limit = Semaphore::new(self.settings.bos_concurrency);
        let bos_limit = &bos_limit;
        let ports = &Ports {
            store: self.store.as_ref(),
            lanes: self.lanes.as_ref(),
            queue: self.queue.as_ref(),
            backend: self.backend.as_ref(),
            upstream: Upstream {
                breaker: self.breaker.as_ref(),
                store: self.breakers.as_ref(),
            },
            turn: &self.turn,
        };
        let run = |message: WorkMessage, redelivered| async move {
            let report = consume(
                ports,
                &self.settings,
                &message,
                redelivered,
                deadline,
                bos_limit,
            )
            .await?;
            tracing::info!(
                task_id = report.task_id.map(tracing::field::display),
                recorded = report.recorded,
                skipped = report.skipped,
                finished = ?report.finished.map(|s| s.as_str()),
                "message done"
            );
            Ok::<(), ChunkError>(())
        };
        // What a message runs in when it carries no trace of its own.
        let invocation = invocation_trace(&event.context);
        let batch = process_fifo_batch(&event.payload.records, Undecodable::Fail, run);
        trace::within(invocation, batch).await
    }
}
