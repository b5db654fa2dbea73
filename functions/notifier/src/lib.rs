//! The notifier function: the table's stream, filtered by the event source to tasks whose
//! status became final, arrives here; each record becomes the task's webhook deliveries and,
//! for a task made from a file, the export of its result files (`usecases::notify`). Records are handled in order; the first that fails is reported, so
//! Lambda retries the stream from there, and what was done before it is not redone (the
//! deliveries exist and are marked queued).

use aws_adapters::startup::invocation_trace;
use aws_adapters::table_stream::task_of;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::error::Chain;
use tasks_core::ports::{DeliveryQueue, DeliveryStore, IngestQueue, TaskStore, WebhookStore};
use tasks_core::usecases::notify::{notify, NotifyPorts};
use time::OffsetDateTime;

pub struct Notifier {
    pub tasks: Arc<dyn TaskStore>,
    pub endpoints: Arc<dyn WebhookStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    /// The file function's queue, for the export of a task made from a file.
    pub files: Arc<dyn IngestQueue>,
}

impl Notifier {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, records = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<Event>) -> DynamoDbEventResponse {
        invocation_trace(&event.context);
        let ports = NotifyPorts {
            tasks: self.tasks.as_ref(),
            endpoints: self.endpoints.as_ref(),
            deliveries: self.deliveries.as_ref(),
            queue: self.queue.as_ref(),
            files: self.files.as_ref(),
        };
        let mut response = DynamoDbEventResponse::default();
        for record in &event.payload.records {
            let Some(task_id) = task_of(record) else {
                continue;
            };
            if let Err(error) = notify(&ports, task_id, OffsetDateTime::now_utc()).await {
                tracing::warn!(task_id = %task_id, error = %Chain(&error), "notification failed; the stream retries from here");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }
}
