//! Who is calling. The owner comes from the gateway's authorizer (the JWT `sub` claim in the
//! request context), never from anything else the client sends.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::OnceLock;

/// The key of the log pseudonym ([`Owner::log_id`]), set once at cold start.
static PSEUDONYM_KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Keys the owner pseudonym in logs and metrics (`LOG_PSEUDONYM_KEY`, from Secrets Manager).
/// A later call changes nothing: the key is fixed for the process's life. Returns whether this
/// call set it.
pub fn set_pseudonym_key(key: &[u8]) -> bool {
    PSEUDONYM_KEY.set(key.to_vec()).is_ok()
}

/// The authenticated caller, as API Gateway's JWT authorizer identified them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    /// `None` for an empty subject: an authorizer that let such a request through is
    /// misconfigured, and the request is treated as unauthenticated.
    pub fn from_subject(subject: &str) -> Option<Self> {
        let subject = subject.trim();
        (!subject.is_empty() && subject.len() <= 256).then(|| Self(subject.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which storage groups this owner's records: a full SHA-256, so any
    /// subject (whatever characters it holds) maps to a fixed, delimiter-free string.
    pub fn storage_key(&self) -> String {
        let digest = Sha256::digest(format!("owner:{}", self.0).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A short pseudonym for logs and metrics: operators can correlate a caller's lines
    /// without the logs holding the subject. It is an HMAC under a secret key, so nobody
    /// without the key can compute it from a guessable subject (an unsalted hash could be).
    /// Before a key is set it is `unkeyed`: never a value that could be computed.
    pub fn log_id(&self) -> String {
        let Some(key) = PSEUDONYM_KEY.get() else {
            return "unkeyed".to_owned();
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            return "unkeyed".to_owned();
        };
        mac.update(self.0.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Debug prints the log id only, so an owner can never be logged by accident.
impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({})", self.log_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_subjects_are_refused() {
        assert!(Owner::from_subject("").is_none());
        assert!(Owner::from_subject("  ").is_none());
    }

    #[test]
    fn log_id_is_stable_short_and_hides_the_subject() {
        set_pseudonym_key(b"unit-test-pseudonym-key");
        let a = Owner::from_subject("alice@example.com").unwrap();
        assert_eq!(a.log_id(), a.log_id());
        assert_eq!(a.log_id().len(), 16);
        assert!(!format!("{a:?}").contains("alice"));
        assert_ne!(a.log_id(), Owner::from_subject("bob").unwrap().log_id());
    }

    #[test]
    fn log_id_cannot_be_computed_from_the_subject_without_the_key() {
        set_pseudonym_key(b"unit-test-pseudonym-key");
        let a = Owner::from_subject("alice").unwrap();
        // What an unkeyed pseudonym would be, for anyone who guesses the subject:
        let guessable: String = Sha256::digest(b"owner-log-id:alice")[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(a.log_id(), guessable);
        let mut other_key = Hmac::<Sha256>::new_from_slice(b"another key").unwrap();
        other_key.update(b"alice");
        let under_other_key: String = other_key.finalize().into_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(a.log_id(), under_other_key, "the id depends on the key");
    }
}
