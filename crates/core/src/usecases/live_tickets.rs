//! Live tickets (`crate::live_ticket`): issuing one for a caller (`POST /live-tickets`) and
//! redeeming it once (the WebSocket authorizer).

use crate::identity::Owner;
use crate::live_ticket::{LiveTicket, TICKET_TTL};
use crate::ports::{StoreError, TicketStore};
use serde::Serialize;
use time::OffsetDateTime;

/// The answer to `POST /live-tickets`.
#[derive(Debug, Serialize)]
pub struct IssuedTicket {
    pub ticket: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Issues a ticket for `owner`, good until `now` + [`TICKET_TTL`].
pub async fn issue(
    store: &dyn TicketStore,
    owner: &Owner,
    now: OffsetDateTime,
) -> Result<IssuedTicket, StoreError> {
    let ticket = LiveTicket::generate();
    // Whole seconds, as the store's expiry is kept, so the answer never promises more.
    let expires_at = (now + TICKET_TTL).replace_nanosecond(0).unwrap_or(now);
    store.put_ticket(&ticket.key(), owner, expires_at).await?;
    Ok(IssuedTicket {
        ticket: ticket.as_str().to_owned(),
        expires_at,
    })
}

/// The caller a ticket was issued to, if it is unused and unexpired; it is used up either way
/// (a second redemption finds nothing).
pub async fn redeem(
    store: &dyn TicketStore,
    raw: &str,
    now: OffsetDateTime,
) -> Result<Option<Owner>, StoreError> {
    let Some(ticket) = LiveTicket::parse(raw) else {
        return Ok(None);
    };
    store.take_ticket(&ticket.key(), now).await
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use super::*;
    use crate::live_ticket::LiveTicket;
    use crate::memory::MemoryStore;

    fn alice() -> Owner {
        Owner::from_subject("alice").unwrap()
    }

    #[tokio::test]
    async fn a_ticket_names_its_caller_once() {
        let store = MemoryStore::default();
        let now = OffsetDateTime::now_utc();
        let issued = issue(&store, &alice(), now).await.unwrap();
        assert_eq!(issued.ticket.len(), 43);
        assert!(issued.expires_at > now + time::Duration::seconds(28));

        let first = redeem(&store, &issued.ticket, now).await.unwrap();
        assert_eq!(first, Some(alice()));
        let again = redeem(&store, &issued.ticket, now).await.unwrap();
        assert_eq!(again, None, "a ticket is single-use");
    }

    #[tokio::test]
    async fn an_expired_or_made_up_ticket_names_nobody() {
        let store = MemoryStore::default();
        let now = OffsetDateTime::now_utc();
        let issued = issue(&store, &alice(), now).await.unwrap();
        let later = now + TICKET_TTL + time::Duration::seconds(1);
        assert_eq!(redeem(&store, &issued.ticket, later).await.unwrap(), None);

        let other = LiveTicket::generate();
        for raw in ["", "x", "not a ticket", other.as_str(), &"A".repeat(5000)] {
            assert_eq!(redeem(&store, raw, now).await.unwrap(), None, "{raw:.20}");
        }
    }
}
