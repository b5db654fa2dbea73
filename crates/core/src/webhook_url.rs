//! Where a webhook may be sent: the URL rules and the address policy that keep a client's URL
//! from reaching our own network (SSRF). A URL is checked when it is registered, and its host
//! is resolved and checked again before every delivery, since DNS can change between the two
//! (rebinding).
//!
//! Refused everywhere: loopback, private (RFC 1918), shared (CGNAT), link-local (the cloud
//! metadata address 169.254.169.254 among them), unique-local, multicast, broadcast,
//! documentation and unspecified addresses, IPv4 hidden in IPv6, credentials in the URL and
//! fragments. Deployed stages take `https` only. The local stack's [`TargetPolicy::local`]
//! also takes `http` and loopback receivers; the template never sets it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest URL we keep.
pub const MAX_URL_CHARS: usize = 2_048;
/// How long a host may take to resolve before the URL is refused as unresolvable.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which receivers are allowed, beyond the public `https` ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// `http` and loopback receivers (`WEBHOOK_ALLOW_LOOPBACK`): the local stack only.
    pub allow_loopback: bool,
}

impl TargetPolicy {
    pub fn local() -> Self {
        Self {
            allow_loopback: true,
        }
    }
}

/// Why a URL is refused; `code()` is the stable detail code clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("the URL is not a valid absolute URL of at most 2,048 characters")]
    Malformed,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not carry credentials or a fragment")]
    HasCredentials,
    #[error("the URL's host resolves to an address webhooks may not reach")]
    ForbiddenAddress,
    #[error("the URL's host does not resolve")]
    Unresolvable,
}

impl UrlRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_url",
            Self::NotHttps => "url_not_https",
            Self::HasCredentials => "url_has_credentials",
            Self::ForbiddenAddress => "forbidden_address",
            Self::Unresolvable => "unresolvable_host",
        }
    }
}

/// A webhook URL that passed the static rules (scheme, shape). Where it points is checked by
/// [`resolve`], at registration and before each delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(raw: &str, policy: TargetPolicy) -> Result<Self, UrlRefusal> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(UrlRefusal::Malformed);
        }
        let url = url::Url::parse(raw).map_err(|_| UrlRefusal::Malformed)?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_loopback => {}
            _ => return Err(UrlRefusal::NotHttps),
        }
        if url.host().is_none() {
            return Err(UrlRefusal::Malformed);
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(UrlRefusal::HasCredentials);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

/// Resolves the URL's host and checks every address it gives: one forbidden address refuses
/// the URL, since a client could make the resolver pick it. Returns the addresses to connect
/// to, so that the delivery connects to what was checked.
pub async fn resolve(
    url: &WebhookUrl,
    policy: TargetPolicy,
) -> Result<Vec<SocketAddr>, UrlRefusal> {
    let port = url.0.port_or_known_default().ok_or(UrlRefusal::Malformed)?;
    let addresses: Vec<SocketAddr> = match url.0.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                _ => return Err(UrlRefusal::Unresolvable),
            }
        }
        None => return Err(UrlRefusal::Malformed),
    };
    if addresses.is_empty() {
        return Err(UrlRefusal::Unresolvable);
    }
    if addresses.iter().any(|a| !allowed(a.ip(), policy)) {
        return Err(UrlRefusal::ForbiddenAddress);
    }
    Ok(addresses)
}

/// Whether a webhook may be delivered to `ip`.
pub fn allowed(ip: IpAddr, policy: TargetPolicy) -> bool {
    let ip = match ip {
        // An IPv4 address dressed as IPv6 (::ffff:a.b.c.d) is judged as what it is.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return policy.allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b); // RFC 6598, carrier-grade NAT
    let this_network = a == 0;
    let reserved = a >= 240; // 240.0.0.0/4 and broadcast
    !(ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || shared
        || this_network
        || reserved)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let documentation = segments[0] == 0x2001 && segments[1] == 0x0db8;
    // NAT64 and 6to4 carry IPv4 addresses a gateway may turn into private ones.
    let nat64 = segments[0] == 0x0064 && segments[1] == 0xff9b;
    let six_to_four = segments[0] == 0x2002;
    !(ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || ip.to_ipv4().is_some() // IPv4-compatible (::a.b.c.d)
        || documentation
        || nat64
        || six_to_four)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_webhooks_may_not_reach() {
        let deployed = TargetPolicy::default();
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ];
        for ip in refused {
            assert!(!allowed(ip.parse().unwrap(), deployed), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(allowed(ip.parse().unwrap(), deployed), "{ip}");
        }
        // The local stack adds loopback, and only loopback.
        assert!(allowed("127.0.0.1".parse().unwrap(), TargetPolicy::local()));
        assert!(allowed("::1".parse().unwrap(), TargetPolicy::local()));
        assert!(!allowed(
            "169.254.169.254".parse().unwrap(),
            TargetPolicy::local()
        ));
        assert!(!allowed("10.0.0.1".parse().unwrap(), TargetPolicy::local()));
    }

    #[test]
    fn url_rules() {
        let deployed = TargetPolicy::default();
        let cases = [
            ("https://hooks.example.com/x", deployed, Ok(())),
            (
                "http://hooks.example.com/x",
                deployed,
                Err(UrlRefusal::NotHttps),
            ),
            ("http://127.0.0.1:9000/x", TargetPolicy::local(), Ok(())),
            (
                "ftp://hooks.example.com/x",
                TargetPolicy::local(),
                Err(UrlRefusal::NotHttps),
            ),
            (
                "https://u:p@hooks.example.com/",
                deployed,
                Err(UrlRefusal::HasCredentials),
            ),
            (
                "https://hooks.example.com/#f",
                deployed,
                Err(UrlRefusal::HasCredentials),
            ),
            ("not a url", deployed, Err(UrlRefusal::Malformed)),
            ("https://", deployed, Err(UrlRefusal::Malformed)),
            (
                "mailto:a@example.com",
                TargetPolicy::local(),
                Err(UrlRefusal::NotHttps),
            ),
        ];
        for (raw, policy, expected) in cases {
            assert_eq!(
                WebhookUrl::parse(raw, policy).map(|_| ()),
                expected,
                "{raw}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(
            WebhookUrl::parse(&long, deployed),
            Err(UrlRefusal::Malformed)
        );
    }

    #[tokio::test]
    async fn literal_addresses_are_checked_without_dns() {
        let local = TargetPolicy::local();
        let metadata = WebhookUrl::parse("http://169.254.169.254/latest", local).unwrap();
        assert_eq!(
            resolve(&metadata, local).await,
            Err(UrlRefusal::ForbiddenAddress)
        );
        let mapped = WebhookUrl::parse("http://[::ffff:10.0.0.1]/", local).unwrap();
        assert_eq!(
            resolve(&mapped, local).await,
            Err(UrlRefusal::ForbiddenAddress)
        );
        let receiver = WebhookUrl::parse("http://127.0.0.1:8123/hook", local).unwrap();
        assert_eq!(
            resolve(&receiver, local).await,
            Ok(vec!["127.0.0.1:8123".parse().unwrap()])
        );
        let loopback = WebhookUrl::parse("https://127.0.0.1/", TargetPolicy::default()).unwrap();
        assert_eq!(
            resolve(&loopback, TargetPolicy::default()).await,
            Err(UrlRefusal::ForbiddenAddress)
        );
    }
}
