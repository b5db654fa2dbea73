//! Live tickets: how a browser opens live progress. Browsers cannot set headers on a
//! WebSocket, so a page first asks the HTTP API (with its bearer token) for a ticket, then opens
//! `wss://…/live?ticket=…`. A ticket is a random secret that names its caller, is good for
//! [`TICKET_TTL`], and is taken once: the authorizer's redemption removes it.
//!
//! The store keeps only the ticket's SHA-256 ([`TicketKey`]), so whoever reads the table
//! cannot connect as anyone; the ticket itself is shown once, to its caller, and never logged.
//! Issuing and redeeming are `usecases::live_tickets`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// How long a ticket may wait for its connection.
pub const TICKET_TTL: time::Duration = time::Duration::seconds(30);

/// Random bytes in a ticket: 256 bits, too many to guess within its 30 seconds.
const TICKET_BYTES: usize = 32;

/// The secret itself, as its caller gets it (43 URL-safe characters).
#[derive(Clone, PartialEq, Eq)]
pub struct LiveTicket(String);

/// What the store keeps of a ticket: its SHA-256, hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketKey(String);

impl LiveTicket {
    /// A new random ticket.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TICKET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// `None` for anything that cannot be a ticket of ours, so a made-up query string costs
    /// no store call.
    pub fn parse(raw: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (decoded.len() == TICKET_BYTES).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store's key for this ticket.
    pub fn key(&self) -> TicketKey {
        let digest = Sha256::digest(self.0.as_bytes());
        TicketKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Never printed, not even in a test failure.
impl fmt::Debug for LiveTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveTicket(..)")
    }
}

impl TicketKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_key_is_not_the_ticket_and_debug_hides_it() {
        let ticket = LiveTicket::generate();
        assert_ne!(ticket.key().as_str(), ticket.as_str());
        assert_eq!(ticket.key().as_str().len(), 64);
        assert!(!format!("{ticket:?}").contains(ticket.as_str()));
        assert!(LiveTicket::parse(ticket.as_str()).is_some());
    }
}
