//! The sender's work on one delivery: check where the endpoint's URL points *now* (DNS may
//! have changed since registration), sign the stored body with every current secret, POST it
//! once, record the attempt, and say when to try again. An endpoint failing without a success
//! for `webhook_delivery::DISABLE_AFTER` is disabled; a success clears the clock.

use crate::config::Settings;
use crate::ports::{DeliveryStore, StoreError, WebhookPost, WebhookPoster, WebhookStore};
use crate::webhook::{EndpointStatus, WebhookEndpoint};
use crate::webhook_delivery::{
    Attempt, DeliveryMessage, DeliveryStatus, ReceiverAnswer, DISABLE_AFTER,
};
use crate::webhook_event::signature;
use crate::webhook_url::resolve;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The ports the sender uses.
pub struct DeliverPorts<'a> {
    pub endpoints: &'a dyn WebhookStore,
    pub deliveries: &'a dyn DeliveryStore,
    pub poster: &'a dyn WebhookPoster,
}

/// What to do with the queue message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more to send: delete the message.
    Done,
    /// Send again after this wait (the schedule's, scaled by the settings).
    RetryIn(Duration),
}

#[tracing::instrument(skip_all, fields(endpoint_id = %msg.endpoint_id, delivery_id = %msg.delivery_id))]
pub async fn deliver(
    ports: &DeliverPorts<'_>,
    settings: &Settings,
    msg: &DeliveryMessage,
    now: OffsetDateTime,
) -> Result<Next, StoreError> {
    let Some(mut delivery) = ports
        .deliveries
        .get_delivery(msg.endpoint_id, &msg.delivery_id)
        .await?
    else {
        return Ok(Next::Done);
    };
    if delivery.status != DeliveryStatus::Pending {
        return Ok(Next::Done);
    }
    let (seen_attempts, seen_status) = (delivery.attempts.len(), delivery.status);
    let endpoint = ports.endpoints.get_endpoint(msg.endpoint_id).await?;
    let Some(endpoint) = endpoint.filter(|e| e.status == EndpointStatus::Enabled) else {
        // Deleted or disabled since: nothing will be sent; the log says so.
        delivery.abandon();
        ports
            .deliveries
            .update_delivery(&delivery, seen_attempts, seen_status)
            .await?;
        tracing::info!("delivery abandoned: its endpoint is gone or disabled");
        return Ok(Next::Done);
    };

    let attempt = attempt(
        ports,
        settings,
        &endpoint,
        &delivery.event_id,
        &delivery.payload,
        now,
    )
    .await;
    let succeeded = attempt.succeeded();
    let outcome = attempt.error.clone();
    let wait = delivery.record(attempt);
    if !ports
        .deliveries
        .update_delivery(&delivery, seen_attempts, seen_status)
        .await?
    {
        // Another sender recorded this attempt first (a duplicate message): it decides.
        return Ok(Next::Done);
    }
    track_health(ports.endpoints, endpoint, succeeded, now).await?;
    let mut metrics = crate::metrics::MetricSet::new()
        .count("WebhookAttempts", 1)
        .count("WebhookAttemptsFailed", u64::from(!succeeded));
    if delivery.status == DeliveryStatus::Failed {
        // Every scheduled attempt failed: the alarm on this metric tells the on-call.
        metrics = metrics.count("WebhookDeliveriesFailed", 1);
    }
    metrics.emit();
    tracing::info!(
        attempt = delivery.attempts.len(),
        succeeded,
        error = outcome.as_deref(),
        status = delivery.status.as_str(),
        "webhook attempt recorded"
    );
    Ok(match wait {
        Some(wait) => Next::RetryIn(wait.mul_f64(settings.webhook_schedule_scale)),
        None => Next::Done,
    })
}

/// One POST of `payload` to the endpoint, signed with every current secret.
async fn attempt(
    ports: &DeliverPorts<'_>,
    settings: &Settings,
    endpoint: &WebhookEndpoint,
    event_id: &str,
    payload: &str,
    now: OffsetDateTime,
) -> Attempt {
    let started = Instant::now();
    let result = match resolve(&endpoint.url, settings.webhook_targets).await {
        Err(refusal) => Err(refusal.code()),
        Ok(addresses) => {
            let timestamp = now.unix_timestamp();
            let secrets = endpoint.signing_secrets(now);
            let headers = vec![
                ("content-type", "application/json".to_owned()),
                ("webhook-id", event_id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                (
                    "webhook-signature",
                    signature(&secrets, event_id, timestamp, payload),
                ),
            ];
            let post = WebhookPost {
                url: &endpoint.url,
                addresses: &addresses,
                headers,
                body: payload,
                timeout: settings.webhook_attempt_timeout,
            };
            ports.poster.post(post).await
        }
    };
    let (status, error) = match result.map(|status| (status, ReceiverAnswer::of(status))) {
        Ok((status, ReceiverAnswer::Acknowledged)) => (Some(status), None),
        Ok((status, ReceiverAnswer::Refused)) => (Some(status), Some("http_status".to_owned())),
        Err(code) => (None, Some(code.to_owned())),
    };
    Attempt {
        at: now,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
    }
}

/// Starts or clears the endpoint's failure clock, and disables it once the clock passes
/// [`DISABLE_AFTER`]. A lost race here only delays the bookkeeping to the next attempt.
async fn track_health(
    endpoints: &dyn WebhookStore,
    mut endpoint: WebhookEndpoint,
    succeeded: bool,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let seen = endpoint.updated_at;
    match (succeeded, endpoint.failing_since) {
        (true, None) => return Ok(()),
        (true, Some(_)) => endpoint.failing_since = None,
        (false, None) => endpoint.failing_since = Some(now),
        (false, Some(since)) if now - since >= DISABLE_AFTER => {
            endpoint.status = EndpointStatus::Disabled;
            tracing::warn!(endpoint_id = %endpoint.id, "webhook endpoint disabled after failing for 5 days");
        }
        (false, Some(_)) => return Ok(()),
    }
    endpoint.updated_at = now.max(seen + Duration::from_micros(1));
    endpoints.replace_endpoint(&endpoint, seen).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Owner;
    use crate::memory::{MemoryDeliveryQueue, MemoryIngestQueue, MemoryPoster, MemoryStore};
    use crate::ports::TaskStore;
    use crate::task::{Task, TaskStatus, TaskType};
    use crate::usecases::notify::{notify, NotifyPorts};
    use crate::webhook::EventType;
    use crate::webhook_delivery::SCHEDULE;
    use crate::webhook_url::{TargetPolicy, WebhookUrl};

    fn settings() -> Settings {
        Settings {
            webhook_targets: TargetPolicy::local(),
            ..Settings::default()
        }
    }

    /// A completed task of alice's, and her endpoints wanting `wanted`, stored.
    async fn setup(store: &MemoryStore, wanted: &[&[EventType]]) -> (Task, Vec<WebhookEndpoint>) {
        let alice = Owner::from_subject("alice").unwrap();
        let now = OffsetDateTime::now_utc();
        let mut task = Task::new(TaskType::BeneficiariesImport, alice.clone(), 1, now);
        task.succeeded = 1;
        task.status = TaskStatus::Completed;
        task.finished_at = Some(now);
        store.insert_task(&task).await.unwrap();
        let mut endpoints = vec![];
        for types in wanted {
            let url = WebhookUrl::parse("http://127.0.0.1:9/hook", TargetPolicy::local()).unwrap();
            let e = WebhookEndpoint::new(alice.clone(), url, types.to_vec(), None, now);
            store.insert_endpoint(&e).await.unwrap();
            endpoints.push(e);
        }
        (task, endpoints)
    }

    /// Runs the notifier for `task` and returns the one delivery message it queued.
    async fn notified(store: &MemoryStore, task: &Task) -> DeliveryMessage {
        let queue = MemoryDeliveryQueue::default();
        let ports = NotifyPorts {
            tasks: store,
            endpoints: store,
            deliveries: store,
            queue: &queue,
            files: &MemoryIngestQueue::default(),
        };
        notify(&ports, task.id, OffsetDateTime::now_utc())
            .await
            .unwrap();
        queue.sent()[0].clone()
    }

    #[tokio::test]
    async fn a_final_task_makes_one_delivery_per_interested_endpoint_once() {
        // Given a completed task, an endpoint for every event and one for failures only
        let store = MemoryStore::default();
        let queue = MemoryDeliveryQueue::default();
        let (task, endpoints) = setup(&store, &[&EventType::ALL, &[EventType::TaskFailed]]).await;
        let ports = NotifyPorts {
            tasks: &store,
            endpoints: &store,
            deliveries: &store,
            queue: &queue,
            files: &MemoryIngestQueue::default(),
        };

        // When its stream record is handled twice
        let now = OffsetDateTime::now_utc();
        assert_eq!(notify(&ports, task.id, now).await.unwrap(), 1);
        assert_eq!(notify(&ports, task.id, now).await.unwrap(), 0);

        // Then one delivery, to the first endpoint, carrying the task as GET shows it
        let sent = queue.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].endpoint_id, endpoints[0].id);
        let d = store
            .get_delivery(endpoints[0].id, &sent[0].delivery_id)
            .await
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
        assert_eq!(body["type"], "task.completed");
        assert_eq!(body["id"], format!("evt_{}", task.id.simple()));
        assert_eq!(body["data"], serde_json::to_value(task.view()).unwrap());
    }

    #[tokio::test]
    async fn failures_are_retried_on_the_schedule_and_a_success_ends_it() {
        // Given a queued delivery and a receiver failing twice, then answering 204
        let store = MemoryStore::default();
        let (task, endpoints) = setup(&store, &[&EventType::ALL]).await;
        let msg = notified(&store, &task).await;
        let poster = MemoryPoster::answering(&[Ok(500), Err("timeout"), Ok(204)]);
        let deliver_ports = DeliverPorts {
            endpoints: &store,
            deliveries: &store,
            poster: &poster,
        };

        // When the sender handles the message until it is done
        let mut nexts = vec![];
        loop {
            let next = deliver(&deliver_ports, &settings(), &msg, OffsetDateTime::now_utc())
                .await
                .unwrap();
            nexts.push(next);
            if next == Next::Done {
                break;
            }
        }

        // Then it waited as the schedule says, and the log holds three attempts
        assert_eq!(
            nexts,
            vec![
                Next::RetryIn(SCHEDULE[1]),
                Next::RetryIn(SCHEDULE[2]),
                Next::Done
            ]
        );
        let d = store
            .get_delivery(msg.endpoint_id, &msg.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.status, DeliveryStatus::Succeeded);
        let errors: Vec<Option<String>> = d.attempts.iter().map(|a| a.error.clone()).collect();
        assert_eq!(
            errors,
            vec![Some("http_status".into()), Some("timeout".into()), None]
        );
        // Every attempt carried the event id and a signature by the endpoint's secret
        for (headers, body) in poster.received() {
            let header = |name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            assert_eq!(header("webhook-id"), d.event_id);
            let ts: i64 = header("webhook-timestamp").parse().unwrap();
            let secrets = endpoints[0].signing_secrets(OffsetDateTime::now_utc());
            assert_eq!(
                header("webhook-signature"),
                signature(&secrets, &d.event_id, ts, &body)
            );
        }
        // And a repeated message sends nothing more
        assert_eq!(
            deliver(&deliver_ports, &settings(), &msg, OffsetDateTime::now_utc())
                .await
                .unwrap(),
            Next::Done
        );
        assert_eq!(poster.received().len(), 3);
    }

    #[tokio::test]
    async fn an_endpoint_failing_for_five_days_is_disabled_and_a_deleted_one_abandoned() {
        let store = MemoryStore::default();
        let (task, endpoints) = setup(&store, &[&EventType::ALL]).await;
        let now = OffsetDateTime::now_utc();
        let mut failing = endpoints[0].clone();
        failing.failing_since = Some(now - DISABLE_AFTER);
        assert!(store
            .replace_endpoint(&failing, endpoints[0].updated_at)
            .await
            .unwrap());
        let msg = notified(&store, &task).await;
        let poster = MemoryPoster::answering(&[Ok(503)]);
        let deliver_ports = DeliverPorts {
            endpoints: &store,
            deliveries: &store,
            poster: &poster,
        };

        deliver(&deliver_ports, &settings(), &msg, now)
            .await
            .unwrap();
        let e = store.get_endpoint(failing.id).await.unwrap().unwrap();
        assert_eq!(e.status, EndpointStatus::Disabled);

        // The next attempt finds it disabled: abandoned, nothing sent
        assert_eq!(
            deliver(&deliver_ports, &settings(), &msg, now)
                .await
                .unwrap(),
            Next::Done
        );
        assert_eq!(poster.received().len(), 1);
        let d = store
            .get_delivery(msg.endpoint_id, &msg.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.status, DeliveryStatus::Failed);
    }

    #[tokio::test]
    async fn where_the_url_points_is_checked_again_before_every_attempt() {
        // Given an endpoint whose URL points somewhere forbidden by the time of delivery (as
        // after a DNS rebinding: registration saw a public address)
        let store = MemoryStore::default();
        let (task, endpoints) = setup(&store, &[&EventType::ALL]).await;
        let mut rebound = endpoints[0].clone();
        rebound.url =
            WebhookUrl::parse("http://169.254.169.254/latest", TargetPolicy::local()).unwrap();
        assert!(store
            .replace_endpoint(&rebound, endpoints[0].updated_at)
            .await
            .unwrap());
        let msg = notified(&store, &task).await;
        let poster = MemoryPoster::default();
        let deliver_ports = DeliverPorts {
            endpoints: &store,
            deliveries: &store,
            poster: &poster,
        };

        // When the sender attempts it
        let next = deliver(&deliver_ports, &settings(), &msg, OffsetDateTime::now_utc())
            .await
            .unwrap();

        // Then nothing is sent, and the attempt says why
        assert!(poster.received().is_empty());
        assert_eq!(next, Next::RetryIn(SCHEDULE[1]));
        let d = store
            .get_delivery(msg.endpoint_id, &msg.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.attempts[0].error.as_deref(), Some("forbidden_address"));
    }
}
