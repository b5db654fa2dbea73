//! What a webhook says and how it is signed. An event is `{"id", "type", "created_at", "data"}`
//! with `data` the task JSON exactly as `GET` returns it (no beneficiary data: a task's JSON has
//! none). Its id is derived from the task, so however often a stream record comes back, the
//! transition has one event id, and receivers can de-duplicate on it.
//!
//! Signatures follow Standard Webhooks 1.0: `webhook-signature` is `v1,` + base64 of
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret's bytes
//! (base64 after `whsec_`); during a rotation, one such value per secret, space-separated.

use crate::task::{Task, TaskStatus, TaskView};
use crate::webhook::EventType;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub data: TaskView,
}

impl Event {
    /// The event a task's final state makes, or `None` while it is not final.
    pub fn for_task(task: &Task, now: OffsetDateTime) -> Option<Self> {
        let event_type = match task.status {
            TaskStatus::Completed => EventType::TaskCompleted,
            TaskStatus::CompletedWithErrors => EventType::TaskCompletedWithErrors,
            TaskStatus::Failed => EventType::TaskFailed,
            TaskStatus::Cancelled => EventType::TaskCancelled,
            TaskStatus::Rejected => EventType::TaskRejected,
            TaskStatus::AwaitingUpload
            | TaskStatus::Validating
            | TaskStatus::Queued
            | TaskStatus::Running => return None,
        };
        Some(Self {
            // A task becomes final once, so the task id names the transition.
            id: format!("evt_{}", task.id.simple()),
            event_type,
            created_at: task.finished_at.unwrap_or(now),
            data: task.view(),
        })
    }
}

/// The `webhook-signature` header value for a message signed with each of `secrets`; a secret
/// that is not `whsec_` + base64 is skipped (none such is ever made).
pub fn signature(secrets: &[&str], message_id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
            mac.update(format!("{message_id}.{timestamp}.{body}").as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_reference_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[secret], id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = signature(&[secret, secret], id, 1614265330, body);
        assert_eq!(two.split(' ').count(), 2);
    }
}
