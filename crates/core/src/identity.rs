//! Who is calling. The owner comes from the gateway's authorizer (the JWT `sub` claim in the
//! request context), never from anything else the client sends.

use sha2::{Digest, Sha256};
use std::fmt;

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

    /// A short, non-reversible id for logs and metrics: operators can correlate a caller's
    /// lines without the logs holding the subject itself.
    pub fn log_id(&self) -> String {
        let digest = Sha256::digest(format!("owner-log-id:{}", self.0).as_bytes());
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
        let a = Owner::from_subject("alice@example.com").unwrap();
        assert_eq!(a.log_id(), a.log_id());
        assert_eq!(a.log_id().len(), 16);
        assert!(!format!("{a:?}").contains("alice"));
        assert_ne!(a.log_id(), Owner::from_subject("bob").unwrap().log_id());
    }
}
