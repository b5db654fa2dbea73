//! The file function (`ingest`): each message is one run of a task's file ingest
//! (`usecases::ingest`) or the export of a final task's result files (`usecases::export`). Its batch holds one message, so a run has the whole invocation, and
//! a run that fails comes back with the message (the checkpoint makes it resume).

use aws_adapters::sqs_batch::{process_fifo_batch, Undecodable};
use aws_adapters::startup::{deadline_instant, invocation_trace};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::ports::{
    FileStore, IngestMessage, IngestQueue, LaneStore, RunKind, TaskStore, WorkQueue,
};
use tasks_core::trace;
use tasks_core::usecases::export::{self, ExportError};
use tasks_core::usecases::ingest::{self, IngestError, IngestPorts};

/// A run that failed: its message comes back.
#[derive(Debug, thiserror::Error)]
enum FileJobError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

pub struct Ingest {
    pub store: Arc<dyn TaskStore>,
    pub lanes: Arc<dyn LaneStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub files: Arc<dyn FileStore>,
    pub ingest: Arc<dyn IngestQueue>,
    pub settings: Settings,
}

impl Ingest {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, messages = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = deadline_instant(event.context.deadline);
        let ports = IngestPorts {
            store: self.store.as_ref(),
            lanes: self.lanes.as_ref(),
            queue: self.queue.as_ref(),
            files: self.files.as_ref(),
            ingest: self.ingest.as_ref(),
        };
        let settings = &self.settings;
        let run = |message: IngestMessage, _| async move {
            match message.kind {
                RunKind::Ingest => {
                    let end = ingest::run(ports, settings, message, deadline).await?;
                    tracing::info!(end = ?end, "ingest run ended");
                }
                RunKind::Export => {
                    let done = export::export(ports.store, ports.files, message.task_id).await?;
                    tracing::info!(done = ?done, "export ended");
                }
            }
            Ok::<(), FileJobError>(())
        };
        let invocation = invocation_trace(&event.context);
        // A message no run can read is failed: it goes to the ingest DLQ, whose alarm fires.
        let batch = process_fifo_batch(&event.payload.records, Undecodable::Fail, run);
        trace::within(invocation, batch).await
    }
}
