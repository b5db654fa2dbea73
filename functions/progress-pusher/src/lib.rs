//! The progress pusher: the table's stream, filtered by the event source to changes of task
//! records, arrives here in batches of up to a second's changes; each task changed in the
//! batch is pushed once, in its latest state, to the connections watching it
//! (`usecases::live_progress::push_changes`). A store failure reports the first record of
//! that task, so Lambda retries the stream from there; frames sent before it may be sent
//! again, which clients tolerate (a frame carries the whole task), and a `final` frame never is.

use aws_adapters::startup::invocation_trace;
use aws_adapters::table_stream::task_of;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::error::Chain;
use tasks_core::ports::{ConnectionStore, FramePusher, TaskStore};
use tasks_core::task::TaskId;
use tasks_core::usecases::live_progress::{push_changes, LivePorts};

pub struct Pusher {
    pub tasks: Arc<dyn TaskStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub pusher: Arc<dyn FramePusher>,
}

impl Pusher {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, records = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<Event>) -> DynamoDbEventResponse {
        invocation_trace(&event.context);
        // Each task once, in the order its first change arrived; many changes, one frame.
        let mut changed: Vec<(TaskId, &EventRecord)> = Vec::new();
        for record in &event.payload.records {
            if let Some(id) = task_of(record) {
                if !changed.iter().any(|(seen, _)| *seen == id) {
                    changed.push((id, record));
                }
            }
        }
        let ids: Vec<TaskId> = changed.iter().map(|(id, _)| *id).collect();
        let ports = LivePorts {
            tasks: self.tasks.as_ref(),
            connections: self.connections.as_ref(),
            pusher: self.pusher.as_ref(),
        };
        let mut response = DynamoDbEventResponse::default();
        match push_changes(&ports, &ids).await {
            Ok(pushed) => tracing::info!(
                tasks = ids.len(),
                watched = pushed.watched_tasks,
                frames = pushed.frames,
                gone = pushed.gone,
                "changes pushed"
            ),
            Err((task_id, error)) => {
                tracing::warn!(task_id = %task_id, error = %Chain(&error), "push failed; the stream retries from here");
                let first = changed.iter().find(|(id, _)| *id == task_id);
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = first.and_then(|(_, r)| r.change.sequence_number.clone());
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}
