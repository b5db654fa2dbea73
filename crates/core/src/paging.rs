//! Opaque page tokens. A token carries where the next page starts and a MAC over that
//! position *and* the scope it was issued for (caller, resource, filters). A token that was
//! tampered with, or replayed by another caller or with other filters, fails the MAC check and
//! is refused: it can never become a peek at someone else's data. Storage keys such as
//! DynamoDB's `LastEvaluatedKey` never leave the service.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAC_BYTES: usize = 16;

#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid page token")]
pub struct InvalidPageToken;

impl PageTokens {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, scope: &str, position: &[u8]) -> [u8; MAC_BYTES] {
        // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(position);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    pub fn encode(&self, scope: &str, position: &str) -> String {
        let mut raw = position.as_bytes().to_vec();
        raw.extend_from_slice(&self.mac(scope, position.as_bytes()));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The position a request's optional token carries, checked against `scope`.
    pub fn after(
        &self,
        scope: &str,
        token: Option<&str>,
    ) -> Result<Option<String>, InvalidPageToken> {
        token.map(|t| self.decode(scope, t)).transpose()
    }

    /// The next page's token: the last item's position, when more may follow.
    pub fn next(&self, scope: &str, more: bool, last: Option<String>) -> Option<String> {
        last.filter(|_| more)
            .map(|position| self.encode(scope, &position))
    }

    /// One page of a listing bound to `scope`, the scaffolding every listing shares: the
    /// client's token (refused if minted for another scope) says after which position `read`
    /// starts, and the last item's `position` becomes the next page's token when `read` says
    /// more may follow.
    pub async fn page<T, E, Fut>(
        &self,
        scope: &str,
        token: Option<&str>,
        read: impl FnOnce(Option<String>) -> Fut,
        position: impl Fn(&T) -> String,
    ) -> Result<(Vec<T>, Option<String>), E>
    where
        E: From<InvalidPageToken>,
        Fut: std::future::Future<Output = Result<(Vec<T>, bool), E>>,
    {
        let after = self.after(scope, token)?;
        let (items, more) = read(after).await?;
        let next = self.next(scope, more, items.last().map(position));
        Ok((items, next))
    }

    pub fn decode(&self, scope: &str, token: &str) -> Result<String, InvalidPageToken> {
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| InvalidPageToken)?;
        if raw.len() <= MAC_BYTES || raw.len() > 512 {
            return Err(InvalidPageToken);
        }
        let (position, mac) = raw.split_at(raw.len() - MAC_BYTES);
        // Constant-time comparison through the hmac crate's verifier.
        let mut verifier = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        verifier.update(scope.as_bytes());
        verifier.update(&[0]);
        verifier.update(position);
        verifier
            .verify_truncated_left(mac)
            .map_err(|_| InvalidPageToken)?;
        String::from_utf8(position.to_vec()).map_err(|_| InvalidPageToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let tokens = PageTokens::new(b"k");
        let t = tokens.encode("errors|alice|t1", "41");
        assert_eq!(tokens.decode("errors|alice|t1", &t), Ok("41".into()));
        assert_eq!(
            tokens.decode("errors|bob|t1", &t),
            Err(InvalidPageToken),
            "other caller"
        );
        assert_eq!(
            tokens.decode("result|alice|t1", &t),
            Err(InvalidPageToken),
            "other listing"
        );
        assert_eq!(
            PageTokens::new(b"other").decode("errors|alice|t1", &t),
            Err(InvalidPageToken)
        );
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let tokens = PageTokens::new(b"k");
        let t = tokens.encode("s", "41");
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[0] = b'9';
        let forged = URL_SAFE_NO_PAD.encode(raw);
        for bad in [forged.as_str(), "", "!!!", "AAAA"] {
            assert_eq!(tokens.decode("s", bad), Err(InvalidPageToken), "{bad}");
        }
    }
}
