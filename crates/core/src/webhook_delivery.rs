//! One event on its way to one endpoint: the exact body to send (fixed when the delivery is
//! made, so every attempt sends the same bytes), its attempts, and the retry schedule.
//!
//! The schedule is Svix's: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
//! Only a 2xx is a success (a redirect is a failure). After the eighth failed attempt the
//! delivery is `failed` and kept, for the log and a manual retry. An endpoint that has failed
//! every attempt for [`DISABLE_AFTER`] is disabled.

use crate::webhook::{EndpointId, EventType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;

/// Waits before each attempt; the first is at once.
pub const SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// How long an attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of a receiver's answer read (and kept: none of it is logged).
pub const MAX_ANSWER_BYTES: usize = 4_096;
/// An endpoint failing continuously for this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Succeeded,
    /// Every attempt failed, or the endpoint is gone or disabled.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One attempt: when, what the receiver answered (if it did) and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The receiver's HTTP status; `None` when there was no answer.
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// Why it failed, as a code: `timeout`, `connection_failed`, `forbidden_address`,
    /// `unresolvable_host`, `http_status`; `None` on success.
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status.map(ReceiverAnswer::of) == Some(ReceiverAnswer::Acknowledged)
    }
}

/// What a receiver's HTTP status means for a delivery: the one rule the sender and the log
/// share. Only a 2xx acknowledges (Standard Webhooks); a redirect is not followed and, like
/// any 4xx or 5xx, fails the attempt, which the schedule then retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverAnswer {
    Acknowledged,
    Refused,
}

impl ReceiverAnswer {
    pub fn of(status: u16) -> Self {
        if (200..300).contains(&status) {
            Self::Acknowledged
        } else {
            Self::Refused
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: EndpointId,
    pub event_id: String,
    pub event_type: EventType,
    /// The body every attempt sends.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    /// Whether it was put on the delivery queue (the notifier marks it once the send went
    /// through, so a repeated stream record queues only what is not).
    #[serde(default)]
    pub queued: bool,
    /// Where the current round of the schedule began in `attempts` (a manual retry starts a
    /// new round).
    #[serde(default)]
    pub round_start: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Delivery {
    pub fn new(
        endpoint_id: EndpointId,
        event_id: &str,
        event_type: EventType,
        payload: String,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: delivery_id(endpoint_id, event_id),
            endpoint_id,
            event_id: event_id.to_owned(),
            event_type,
            payload,
            status: DeliveryStatus::Pending,
            attempts: vec![],
            queued: false,
            round_start: 0,
            created_at: now,
        }
    }

    /// Records an attempt; returns how long to wait before the next one, or `None` when the
    /// delivery is now final (a success, or the schedule ran out).
    pub fn record(&mut self, attempt: Attempt) -> Option<Duration> {
        let ok = attempt.succeeded();
        self.attempts.push(attempt);
        if ok {
            self.status = DeliveryStatus::Succeeded;
            return None;
        }
        match SCHEDULE.get(self.attempts.len() - self.round_start) {
            Some(wait) => {
                self.status = DeliveryStatus::Pending;
                Some(*wait)
            }
            None => {
                self.status = DeliveryStatus::Failed;
                None
            }
        }
    }

    /// A manual retry: the delivery is pending again, and its schedule starts over.
    pub fn restart(&mut self) {
        self.status = DeliveryStatus::Pending;
        self.round_start = self.attempts.len();
    }

    /// Ends the delivery without an attempt (its endpoint is gone or disabled).
    pub fn abandon(&mut self) {
        self.status = DeliveryStatus::Failed;
    }
}

/// The one delivery of an event to an endpoint: derived from both, so a stream record seen
/// twice makes the same delivery, which the store refuses to make twice.
pub fn delivery_id(endpoint_id: EndpointId, event_id: &str) -> String {
    let digest = Sha256::digest(format!("{endpoint_id}|{event_id}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("dlv_{hex}")
}

/// What the notifier puts on the delivery queue, and the sender reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub endpoint_id: EndpointId,
    pub delivery_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(status: Option<u16>) -> Attempt {
        Attempt {
            at: OffsetDateTime::UNIX_EPOCH,
            status,
            duration_ms: 1,
            error: None,
        }
    }

    #[test]
    fn only_a_2xx_acknowledges() {
        for (status, answer) in [
            (200, ReceiverAnswer::Acknowledged),
            (204, ReceiverAnswer::Acknowledged),
            (299, ReceiverAnswer::Acknowledged),
            (199, ReceiverAnswer::Refused),
            (301, ReceiverAnswer::Refused),
            (410, ReceiverAnswer::Refused),
            (503, ReceiverAnswer::Refused),
        ] {
            assert_eq!(ReceiverAnswer::of(status), answer, "{status}");
        }
    }

    #[test]
    fn failures_follow_the_schedule_then_the_delivery_fails() {
        let mut d = Delivery::new(
            EndpointId::new_random(),
            "evt_1",
            EventType::TaskCompleted,
            "{}".into(),
            OffsetDateTime::UNIX_EPOCH,
        );
        let mut waits = vec![];
        // A redirect is a failure; so is no answer.
        for status in [
            Some(302),
            None,
            Some(500),
            Some(503),
            Some(429),
            Some(404),
            Some(500),
        ] {
            waits.push(d.record(attempt(status)).expect("more attempts"));
        }
        assert_eq!(waits, SCHEDULE[1..].to_vec());
        assert_eq!(d.record(attempt(Some(500))), None);
        assert_eq!((d.status, d.attempts.len()), (DeliveryStatus::Failed, 8));

        // A manual retry starts a new round; a 2xx ends it.
        d.restart();
        assert_eq!(d.record(attempt(Some(500))), Some(SCHEDULE[1]));
        assert_eq!(d.record(attempt(Some(204))), None);
        assert_eq!(d.status, DeliveryStatus::Succeeded);
    }

    #[test]
    fn one_event_makes_one_delivery_per_endpoint() {
        let (a, b) = (EndpointId::new_random(), EndpointId::new_random());
        assert_eq!(delivery_id(a, "evt_1"), delivery_id(a, "evt_1"));
        assert_ne!(delivery_id(a, "evt_1"), delivery_id(b, "evt_1"));
        assert_ne!(delivery_id(a, "evt_1"), delivery_id(a, "evt_2"));
    }
}
