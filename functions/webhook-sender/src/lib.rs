//! The webhook sender function: each SQS message names one delivery; it is attempted once
//! (`usecases::deliver`). When the schedule says "again later", the message is held back for
//! that long (its visibility) and reported failed, so SQS brings it back then; otherwise it
//! succeeds and is deleted. Deliveries need no order, so a batch's messages run at once.

pub mod poster;

use aws_adapters::startup::invocation_trace;
use aws_adapters::SqsDeliveryQueue;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::error::Chain;
use tasks_core::ports::{DeliveryStore, WebhookPoster, WebhookStore};
use tasks_core::usecases::deliver::{deliver, DeliverPorts, Next};
use tasks_core::webhook_delivery::DeliveryMessage;
use time::OffsetDateTime;

pub struct Sender {
    pub endpoints: Arc<dyn WebhookStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub poster: Arc<dyn WebhookPoster>,
    pub queue: SqsDeliveryQueue,
    pub settings: Settings,
}

impl Sender {
    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, messages = event.payload.records.len()))]
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        invocation_trace(&event.context);
        let results =
            futures::future::join_all(event.payload.records.iter().map(|m| self.one(m))).await;
        let mut response = SqsBatchResponse::default();
        for (record, done) in event.payload.records.iter().zip(results) {
            if !done {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Whether the message is finished with (true) or must come back (false).
    async fn one(&self, record: &SqsMessage) -> bool {
        let Some(msg) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<DeliveryMessage>(b).ok())
        else {
            // No code can read it; the queue's DLQ alarm is how an operator learns of it.
            tracing::error!("undecodable delivery message");
            return false;
        };
        let ports = DeliverPorts {
            endpoints: self.endpoints.as_ref(),
            deliveries: self.deliveries.as_ref(),
            poster: self.poster.as_ref(),
        };
        match deliver(&ports, &self.settings, &msg, OffsetDateTime::now_utc()).await {
            Ok(Next::Done) => true,
            Ok(Next::RetryIn(wait)) => {
                let receipt = record.receipt_handle.as_deref().unwrap_or_default();
                if let Err(e) = self.queue.hold(receipt, wait).await {
                    // The message comes back after the queue's visibility timeout instead.
                    tracing::warn!(error = %Chain(&e), "could not hold the delivery back");
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "delivery failed on our side; it comes back");
                false
            }
        }
    }
}
