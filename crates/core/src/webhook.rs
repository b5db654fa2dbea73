//! Webhook endpoints: where a caller wants to hear about its tasks, which events it wants, and
//! the secrets its deliveries are signed with (Standard Webhooks: `whsec_` + base64 of random
//! bytes). A secret is shown once, when it is made; the JSON views never carry it.

use crate::identity::Owner;
use crate::webhook_url::WebhookUrl;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

/// The most endpoints one caller may register.
pub const MAX_ENDPOINTS_PER_OWNER: usize = 16;
/// The longest description kept.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Random bytes in a secret (Standard Webhooks allows 24 to 64).
const SECRET_BYTES: usize = 32;

/// An endpoint's public id: a random UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndpointId(Uuid);

impl EndpointId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl FromStr for EndpointId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The events a task sends: one per final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "task.completed")]
    TaskCompleted,
    #[serde(rename = "task.completed_with_errors")]
    TaskCompletedWithErrors,
    #[serde(rename = "task.failed")]
    TaskFailed,
    #[serde(rename = "task.cancelled")]
    TaskCancelled,
    /// The task's uploaded file was refused (`crate::upload`).
    #[serde(rename = "task.rejected")]
    TaskRejected,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        Self::TaskCompleted,
        Self::TaskCompletedWithErrors,
        Self::TaskFailed,
        Self::TaskCancelled,
        Self::TaskRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskCompleted => "task.completed",
            Self::TaskCompletedWithErrors => "task.completed_with_errors",
            Self::TaskFailed => "task.failed",
            Self::TaskCancelled => "task.cancelled",
            Self::TaskRejected => "task.rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Enabled,
    /// Failing for too long; deliveries stop until the caller acts.
    Disabled,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Enabled, Self::Disabled]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A signing secret; `expires_at` is set on a secret that was rotated out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub secret: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret, not even in a test failure.
        f.debug_struct("SigningSecret")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl SigningSecret {
    /// A new random secret, `whsec_` + base64 of 32 random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            secret: format!("whsec_{}", STANDARD.encode(bytes)),
            expires_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: EndpointId,
    pub owner: Owner,
    pub url: WebhookUrl,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub status: EndpointStatus,
    /// Newest first; the first never expires, the others stop signing at their `expires_at`.
    pub secrets: Vec<SigningSecret>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When its deliveries began failing without a success since; cleared by a success.
    pub failing_since: Option<OffsetDateTime>,
}

impl WebhookEndpoint {
    pub fn new(
        owner: Owner,
        url: WebhookUrl,
        event_types: Vec<EventType>,
        description: Option<String>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: EndpointId::new_random(),
            owner,
            url,
            event_types,
            description,
            status: EndpointStatus::Enabled,
            secrets: vec![SigningSecret::generate()],
            created_at: now,
            updated_at: now,
            failing_since: None,
        }
    }

    /// The secrets that sign a delivery made at `now`: the current one and any rotated out
    /// less than [`ROTATION_OVERLAP`] ago.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.secret.as_str())
            .collect()
    }

    /// A new current secret; the old current one keeps signing for [`ROTATION_OVERLAP`], and
    /// secrets already past their overlap are dropped.
    pub fn rotate(&mut self, now: OffsetDateTime) {
        self.secrets
            .retain(|s| s.expires_at.is_none_or(|at| at > now));
        for s in &mut self.secrets {
            if s.expires_at.is_none() {
                s.expires_at = Some(now + ROTATION_OVERLAP);
            }
        }
        self.secrets.insert(0, SigningSecret::generate());
        self.updated_at = now;
    }

    pub fn wants(&self, event: EventType) -> bool {
        self.event_types.contains(&event)
    }

    /// Where this endpoint stands in its owner's newest-first listing (as tasks do).
    pub fn list_position(&self) -> String {
        format!("{:020}#{}", self.created_at.unix_timestamp_nanos(), self.id)
    }

    pub fn view(&self) -> EndpointView {
        EndpointView {
            id: self.id,
            url: self.url.as_str().to_owned(),
            event_types: self.event_types.clone(),
            description: self.description.clone(),
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The view with the current secret: only the answers that made it.
    pub fn view_with_secret(&self) -> EndpointWithSecret {
        EndpointWithSecret {
            endpoint: self.view(),
            secret: self
                .secrets
                .first()
                .map(|s| s.secret.clone())
                .unwrap_or_default(),
        }
    }
}

/// The endpoint JSON clients read: no secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    pub id: EndpointId,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub status: EndpointStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The answer to a create or a rotation: the view and the new secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook_url::TargetPolicy;

    fn endpoint() -> WebhookEndpoint {
        let url = WebhookUrl::parse("https://hooks.example.com/x", TargetPolicy::default());
        WebhookEndpoint::new(
            Owner::from_subject("alice").unwrap(),
            url.unwrap(),
            EventType::ALL.to_vec(),
            None,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn secrets_are_standard_webhooks_secrets_and_never_printed() {
        let e = endpoint();
        let secret = &e.secrets[0].secret;
        let raw = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(secret, &endpoint().secrets[0].secret, "random");
        assert!(!format!("{e:?}").contains(secret.as_str()));
        let json = serde_json::to_string(&e.view()).unwrap();
        assert!(!json.contains("whsec_"));
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_for_a_day() {
        let mut e = endpoint();
        let old = e.secrets[0].secret.clone();
        let t0 = OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(60);
        e.rotate(t0);
        let new = e.secrets[0].secret.clone();
        assert_eq!(e.signing_secrets(t0), vec![new.as_str(), old.as_str()]);
        let later = t0 + ROTATION_OVERLAP;
        assert_eq!(e.signing_secrets(later), vec![new.as_str()]);
        // A second rotation after the overlap drops the expired secret.
        e.rotate(later);
        assert_eq!(e.secrets.len(), 2);
    }

    #[test]
    fn event_types_spell_as_the_api_does() {
        for t in EventType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
