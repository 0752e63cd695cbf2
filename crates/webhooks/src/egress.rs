//! Where webhook deliveries may connect: only to globally routable addresses, so that a
//! tenant cannot make the platform send requests into its own network (SSRF) and read the
//! delivery log as a port scanner.
//!
//! Hosts are never judged as strings. A URL is parsed by the parser the HTTP client uses
//! (`url`, WHATWG), which turns `2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1` and
//! `%31%32%37.0.0.1` into the one IPv4 address they all name; the address is then judged by
//! [`is_global`]. A DNS name is judged by what it resolves to, at connection time, by
//! [`PublicResolver`]: the client connects to exactly the addresses that were checked and
//! never resolves the name a second time, so a DNS answer that changes between the check
//! and the connection (rebinding) cannot move the request inward.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// What a delivery refused by the policy records as its error: the same text whatever the
/// target, and never a status, so the log says nothing about the target's ports.
pub const REFUSED: &str = "refused: non-public address";

/// The addresses of one DNS answer that are checked and connected to, at most.
pub const RESOLVED_ADDRESSES_MAX: usize = 16;

/// Which addresses deliveries may reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Also loopback, private and every other non-global address (development and tests
    /// only: `qianbao serve --webhook-private-urls`).
    pub allow_private: bool,
}

/// The policy refused an address or a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused: non-public address")]
pub struct NonPublicAddress;

/// Why a webhook URL cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("not an http:// or https:// URL with a host")]
    NotHttp,
    #[error(transparent)]
    NonPublic(#[from] NonPublicAddress),
}

/// Why a name could not be resolved to addresses a delivery may reach.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error(transparent)]
    NonPublic(#[from] NonPublicAddress),
    #[error("resolving the host: {0}")]
    Lookup(#[from] std::io::Error),
    #[error("the host has no address")]
    NoAddress,
}

impl EgressPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn permits(self, ip: IpAddr) -> bool {
        self.allow_private || is_global(ip)
    }

    /// Whether a delivery may ask DNS for `name`: not for `localhost` and its subdomains,
    /// which are loopback by definition (RFC 6761) whatever a resolver answers (and some
    /// resolvers do not answer `localhost.` at all).
    pub fn permits_name(self, name: &str) -> bool {
        self.allow_private || !is_localhost_name(name)
    }

    /// Checks the host of a parsed URL as far as the URL alone can say: an address is
    /// judged by [`is_global`], `localhost` is refused, any other DNS name passes (it is
    /// checked when it is resolved, by [`PublicResolver`]).
    pub fn check_url(self, url: &Url) -> Result<(), NonPublicAddress> {
        match url.host() {
            Some(Host::Domain(name)) if self.permits_name(name) => Ok(()),
            Some(Host::Domain(_)) | None => Err(NonPublicAddress),
            Some(Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip)),
        }
    }

    /// Checks the host of a parsed URL only if it is an address. The HTTP client connects to
    /// an address host directly without asking the resolver, so this check is the only one
    /// it gets; a DNS name is left to [`PublicResolver`].
    pub fn check_address_host(self, url: &Url) -> Result<(), NonPublicAddress> {
        match url.host() {
            Some(Host::Domain(_)) => Ok(()),
            None => Err(NonPublicAddress),
            Some(Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip)),
        }
    }

    fn check_address(self, ip: IpAddr) -> Result<(), NonPublicAddress> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(NonPublicAddress)
        }
    }

    /// Resolves `name` and checks every address of the answer (at most
    /// [`RESOLVED_ADDRESSES_MAX`]): if any one is not permitted the whole name is refused.
    /// A name that mixes public and internal addresses is a misconfiguration or an attack
    /// (rebinding within one answer), and refusing it says so in the log, where connecting
    /// to the public part only would hide it.
    pub async fn resolve(self, name: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        if !self.permits_name(name) {
            return Err(NonPublicAddress.into());
        }
        // Port 0: the client sets the URL's port on each address it connects to.
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((name, 0)).await?.take(RESOLVED_ADDRESSES_MAX).collect();
        check_resolved(self, &addresses)?;
        Ok(addresses)
    }
}

/// Checks one DNS answer: refused if empty of permitted addresses, or if any is refused.
fn check_resolved(policy: EgressPolicy, addresses: &[SocketAddr]) -> Result<(), ResolveError> {
    if addresses.is_empty() {
        return Err(ResolveError::NoAddress);
    }
    if addresses.iter().all(|address| policy.permits(address.ip())) {
        Ok(())
    } else {
        Err(NonPublicAddress.into())
    }
}

/// Parses a webhook URL as the HTTP client will: `http` or `https`, with a host.
pub fn parse_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw).map_err(|_| UrlError::NotHttp)?;
    let http = matches!(url.scheme(), "http" | "https");
    if !http || url.host().is_none() {
        return Err(UrlError::NotHttp);
    }
    Ok(url)
}

/// `localhost`, `localhost.` and any name under them, in any case.
pub fn is_localhost_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether `ip` is a globally routable unicast address: the only kind a webhook may reach.
///
/// IPv4: everything but the special-purpose blocks below. IPv6: only global unicast
/// (2000::/3) outside its special blocks; and the forms that carry an IPv4 address (mapped
/// `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:AABB:CCDD::`) are judged by that IPv4 address, since that is where a connection to
/// them can end up.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_global_v4(ip),
        IpAddr::V6(ip) => is_global_v6(ip),
    }
}

/// IPv4 blocks that are not globally routable (IANA special-purpose registry and RFC 6890),
/// as (first address, prefix length).
const V4_NON_GLOBAL: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network", 0.0.0.0 unspecified
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // carrier-grade NAT (cloud metadata lives here too)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata 169.254.169.254
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation TEST-NET-1
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation TEST-NET-2
    ([203, 0, 113, 0], 24),  // documentation TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and 255.255.255.255 broadcast
];

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !V4_NON_GLOBAL.iter().any(|&(first, prefix_len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
        bits & mask == u32::from(Ipv4Addr::from(first))
    })
}

/// Blocks inside global unicast 2000::/3 that are not globally routable, as (first address,
/// prefix length).
const V6_NON_GLOBAL: &[([u16; 8], u8)] = &[
    // IETF protocol assignments (Teredo, ORCHID…)
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
    // documentation
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
    // documentation (RFC 9637)
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
];

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_global_v4(v4);
    }
    // Local-use NAT64 (64:ff9b:1::/48) translates into whatever network the operator chose.
    if segments[..3] == [0x64, 0xff9b, 0x0001] {
        return false;
    }
    // Everything outside 2000::/3 is loopback, unspecified, unique-local (fc00::/7),
    // link-local (fe80::/10), site-local (fec0::/10), multicast (ff00::/8), discard-only
    // (100::/64) or not yet assigned.
    let global_unicast = segments[0] & 0xe000 == 0x2000;
    let bits = u128::from(ip);
    global_unicast
        && !V6_NON_GLOBAL.iter().any(|&(first, prefix_len)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
            bits & mask == u128::from(Ipv6Addr::from(first))
        })
}

/// The IPv4 address an IPv6 address carries and leads to: IPv4-mapped (::ffff:0:0/96),
/// IPv4-compatible (::/96, which also covers :: and ::1 as 0.0.0.0 and 0.0.0.1), NAT64
/// (64:ff9b::/96) and 6to4 (2002::/16, the address in bits 16–48).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, high, low_half, ..] => {
            Some(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low_half)))
        }
        _ => None,
    }
}

/// The delivery client's DNS resolver: resolves with the system resolver, then hands the
/// client only an answer whose every address the policy permits ([`EgressPolicy::resolve`]).
/// The client connects to the addresses returned here and to no others.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicResolver {
    policy: EgressPolicy,
}

impl PublicResolver {
    pub fn new(policy: EgressPolicy) -> PublicResolver {
        PublicResolver { policy }
    }
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            match policy.resolve(name.as_str()).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs),
                // Boxed as itself, so the delivery can find it in the client's error chain.
                Err(ResolveError::NonPublic(refused)) => Err(Box::new(refused) as _),
                Err(other) => Err(Box::new(other) as _),
            }
        })
    }
}

/// Whether `error` or any error under it is the policy's refusal.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    // Error chains are short; the bound only guards against a cycle.
    for _ in 0..32 {
        let Some(current) = next else { return false };
        if current.is::<NonPublicAddress>() {
            return true;
        }
        next = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(address: &str, global: bool) {
        let ip: IpAddr = address.parse().unwrap_or_else(|_| panic!("not an address: {address}"));
        assert_eq!(is_global(ip), global, "{address}");
        assert!(EgressPolicy { allow_private: true }.permits(ip), "{address} with allow_private");
    }

    #[test]
    fn only_globally_routable_addresses_are_global() {
        let non_global = [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "2001::1",
            "3fff::1",
            "100::1",
            "64:ff9b:1::1",
            // IPv6 forms of IPv4 addresses, judged by the IPv4 address
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "::ffff:10.0.0.1",
            "::ffff:100.100.100.200",
            "::127.0.0.1",
            "::10.1.2.3",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:1::1",
        ];
        for address in non_global {
            check(address, false);
        }
        let global = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for address in global {
            check(address, true);
        }
    }

    #[test]
    fn the_parser_reads_every_spelling_of_an_address_as_the_address() {
        for (raw, host) in [
            ("http://2130706433:9/", "127.0.0.1"),
            ("http://0x7f000001:9/", "127.0.0.1"),
            ("http://127.1:9/", "127.0.0.1"),
            ("http://0177.0.0.1:9/", "127.0.0.1"),
            ("http://0:9/", "0.0.0.0"),
            ("http://127.0.0.1.:9/", "127.0.0.1"),
            ("http://%31%32%37.0.0.1:9/", "127.0.0.1"),
            ("http://2852039166/", "169.254.169.254"),
            ("http://0xa9fea9fe/", "169.254.169.254"),
            ("http://169.254.169.254./", "169.254.169.254"),
            ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe"),
            ("HTTP://[::FFFF:A9FE:A9FE]/", "::ffff:a9fe:a9fe"),
        ] {
            let url = parse_url(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let parsed: IpAddr = host.parse().unwrap_or_else(|_| panic!("{host}"));
            let named = match url.host() {
                Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
                Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
                other => panic!("{raw}: {other:?}"),
            };
            assert_eq!(named, parsed, "{raw}");
            assert_eq!(EgressPolicy::default().check_url(&url), Err(NonPublicAddress), "{raw}");
        }
    }

    #[test]
    fn urls_are_checked_by_their_host() {
        let public = EgressPolicy::default();
        let private = EgressPolicy { allow_private: true };
        for (raw, public_ok) in [
            ("https://shop.example/hooks", true),
            ("http://8.8.8.8/", true),
            ("http://[2606:4700::1111]:8443/x", true),
            ("http://localhost/", false),
            ("http://LOCALHOST./", false),
            ("http://api.localhost:80/", false),
            ("http://[::1]/", false),
            ("http://100.100.100.200/", false),
        ] {
            let url = parse_url(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(public.check_url(&url).is_ok(), public_ok, "{raw}");
            assert_eq!(private.check_url(&url), Ok(()), "{raw} with allow_private");
        }
        // Names other than localhost wait for their DNS answer.
        let localhost = parse_url("http://localhost/").expect("parses");
        assert_eq!(public.check_address_host(&localhost), Ok(()));
        for raw in ["ftp://8.8.8.8/", "http://", "mailto:a@shop.example", "file:///etc/passwd"] {
            assert_eq!(parse_url(raw).err(), Some(UrlError::NotHttp), "{raw}");
        }
    }

    #[test]
    fn an_answer_is_refused_if_any_address_is_not_global() {
        let public = EgressPolicy::default();
        let at = |ip: &str| SocketAddr::new(ip.parse().expect("address"), 0);
        assert!(check_resolved(public, &[at("8.8.8.8"), at("2606:4700::1111")]).is_ok());
        assert!(matches!(
            check_resolved(public, &[at("8.8.8.8"), at("10.0.0.1")]),
            Err(ResolveError::NonPublic(_))
        ));
        assert!(matches!(check_resolved(public, &[]), Err(ResolveError::NoAddress)));
        let private = EgressPolicy { allow_private: true };
        assert!(check_resolved(private, &[at("8.8.8.8"), at("10.0.0.1")]).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_inward_is_refused_after_lookup() {
        let public = EgressPolicy::default();
        // `localhost` is refused before any lookup.
        assert!(matches!(public.resolve("localhost").await, Err(ResolveError::NonPublic(_))));
        assert!(matches!(public.resolve("localhost.").await, Err(ResolveError::NonPublic(_))));
        // Names the system resolver answers with loopback without asking DNS (it reads
        // numbers as inet_aton does): looked up, then refused by the answer's check.
        for name in ["127.0.0.1", "2130706433"] {
            assert!(
                matches!(public.resolve(name).await, Err(ResolveError::NonPublic(_))),
                "{name}"
            );
        }
        let private = EgressPolicy { allow_private: true };
        let found = private.resolve("localhost").await.expect("localhost resolves");
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
    }
}
