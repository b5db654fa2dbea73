//! The notifier's work on one task that became final (a record of the table's stream): make
//! its event, one delivery per endpoint of the owner's that wants it, and queue them for the
//! sender; for a task made from a file, send the export of its result files. Safe to run any number of times for the same task: deliveries are keyed by event
//! and endpoint, and each is marked once it is queued, so only one a crash left unqueued is
//! queued again.

use crate::ports::{
    DeliveryQueue, DeliveryStore, IngestMessage, IngestQueue, QueueError, StoreError, TaskStore,
    WebhookStore,
};
use crate::task::TaskId;
use crate::webhook::EndpointStatus;
use crate::webhook_delivery::{Delivery, DeliveryMessage, DeliveryStatus};
use crate::webhook_event::Event;
use time::OffsetDateTime;

/// The ports the notifier uses.
pub struct NotifyPorts<'a> {
    pub tasks: &'a dyn TaskStore,
    pub endpoints: &'a dyn WebhookStore,
    pub deliveries: &'a dyn DeliveryStore,
    pub queue: &'a dyn DeliveryQueue,
    /// Where the export of a task made from a file is sent (`usecases::export`).
    pub files: &'a dyn IngestQueue,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("a store call failed")]
    Store(#[from] StoreError),
    #[error("the delivery queue refused the deliveries")]
    Queue(#[from] QueueError),
    #[error("the event could not be encoded")]
    Encode(#[from] serde_json::Error),
}

/// Queues the task's event for each endpoint that wants it; returns how many were queued.
#[tracing::instrument(skip_all, fields(task_id = %task_id))]
pub async fn notify(
    ports: &NotifyPorts<'_>,
    task_id: TaskId,
    now: OffsetDateTime,
) -> Result<usize, NotifyError> {
    let Some(task) = ports.tasks.get_task(task_id).await? else {
        return Ok(0);
    };
    let Some(event) = Event::for_task(&task, now) else {
        return Ok(0);
    };
    // A task made from a file gets its outcome as files too: the file function writes them.
    if task.upload.is_some() && !task.result_files {
        ports.files.send(IngestMessage::export(task.id)).await?;
    }
    let payload = serde_json::to_string(&event)?;
    // Well above the registration cap, which is soft.
    let (endpoints, _) = ports
        .endpoints
        .list_endpoints(&task.owner, None, 100)
        .await?;
    let mut unsent = Vec::new();
    for endpoint in endpoints
        .iter()
        .filter(|e| e.status == EndpointStatus::Enabled && e.wants(event.event_type))
    {
        let delivery = Delivery::new(
            endpoint.id,
            &event.id,
            event.event_type,
            payload.clone(),
            now,
        );
        let current = if ports.deliveries.insert_delivery(&delivery).await? {
            Some(delivery)
        } else {
            ports
                .deliveries
                .get_delivery(endpoint.id, &delivery.id)
                .await?
        };
        // Made before but never queued: a notifier stopped between the write and the send.
        unsent.extend(current.filter(|d| !d.queued && d.attempts.is_empty()));
    }
    let messages: Vec<DeliveryMessage> = unsent
        .iter()
        .map(|d| DeliveryMessage {
            endpoint_id: d.endpoint_id,
            delivery_id: d.id.clone(),
        })
        .collect();
    ports.queue.enqueue(&messages).await?;
    for mut delivery in unsent {
        delivery.queued = true;
        // Lost to a sender that already attempted it: it is on its way either way.
        ports
            .deliveries
            .update_delivery(&delivery, 0, DeliveryStatus::Pending)
            .await?;
    }
    tracing::info!(
        event = event.event_type.as_str(),
        deliveries = messages.len(),
        "task event queued"
    );
    Ok(messages.len())
}
