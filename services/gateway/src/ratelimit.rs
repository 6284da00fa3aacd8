//! Rate limits, kept in memory per gateway instance (service-kit's
//! [`RateLimiter`], GCRA with refunds), and who "the client" is for them.
//!
//! The client's address is the TCP peer's, unless the peer is one of the
//! configured [`TrustedProxies`]: then `X-Forwarded-For` is read from the
//! right, past every trusted proxy, to the first address that is not one.
//! Addresses a client writes into the header itself are left of that and
//! never read, so an untrusted peer cannot choose its bucket. IPv6 clients
//! are limited per /64, the prefix one subscriber is usually given, so
//! rotating through one's own addresses gains nothing.
//!
//! Which methods spend which budget is `policy::RATE_LIMITED_METHODS`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

pub use stocklet_service_kit::ratelimit::{RateLimiter, retry_after_seconds};

/// One trusted proxy: an address, or a network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` agree.
fn prefix_matches(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let mut bits = usize::from(prefix);
    for (x, y) in a.iter().zip(b) {
        if bits == 0 {
            return true;
        }
        let mask = if bits >= 8 {
            0xff
        } else {
            0xffu8 << (8 - bits)
        };
        if (x ^ y) & mask != 0 {
            return false;
        }
        bits = bits.saturating_sub(8);
    }
    true
}

/// The proxies whose `X-Forwarded-For` is believed
/// (`STOCKLET_GATEWAY_TRUSTED_PROXIES`: comma-separated addresses or CIDR
/// networks, such as `10.0.0.0/8, 127.0.0.1, fd00::/8`). None by default:
/// the header is then ignored and every client is its TCP peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

/// Why `STOCKLET_GATEWAY_TRUSTED_PROXIES` does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or a CIDR network (such as 10.0.0.0/8)")]
pub struct InvalidProxy(String);

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut networks = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid = || InvalidProxy(entry.to_owned());
            let (addr, prefix) = match entry.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (entry, None),
            };
            let addr = IpAddr::from_str(addr)
                .map_err(|_| invalid())?
                .to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(invalid)?,
                None => max,
            };
            networks.push(Network { addr, prefix });
        }
        Ok(Self(networks))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|n| format!("{}/{}", n.addr, n.prefix))
            .collect();
        f.write_str(&entries.join(","))
    }
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client of a request that arrived from `peer` with `headers`:
    /// `peer` itself unless it is trusted, else the rightmost
    /// `X-Forwarded-For` address that is not a trusted proxy (the leftmost
    /// when all are). An entry that does not parse ends the walk at the
    /// proxy that wrote it.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for entry in forwarded.into_iter().rev() {
            let Some(ip) = parse_forwarded(entry) else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:5678`), as some proxies write it.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    IpAddr::from_str(entry)
        .ok()
        .or_else(|| SocketAddr::from_str(entry).ok().map(|s| s.ip()))
}

/// The rate-limit key of a client address: IPv4 as it is, IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_networks() {
        let proxies: TrustedProxies = " 10.0.0.0/8, 127.0.0.1 ,fd00::/8,".parse().unwrap();
        assert_eq!(proxies.to_string(), "10.0.0.0/8,127.0.0.1/32,fd00::/8");
        assert!(proxies.trusts(ip("10.200.3.4")));
        assert!(proxies.trusts(ip("127.0.0.1")));
        assert!(proxies.trusts(ip("::ffff:127.0.0.1")), "v4-mapped");
        assert!(proxies.trusts(ip("fd12::1")));
        assert!(!proxies.trusts(ip("127.0.0.2")));
        assert!(!proxies.trusts(ip("11.0.0.1")));
        assert!(!proxies.trusts(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "proxy.example", "::1/129", "1.2.3.4/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
        let odd: TrustedProxies = "192.168.1.0/23,0.0.0.0/0".parse().unwrap();
        assert!(odd.trusts(ip("192.168.0.77")) && odd.trusts(ip("8.8.8.8")));
    }

    #[test]
    fn x_forwarded_for_counts_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let spoofed = forwarded(&["6.6.6.6"]);
        assert_eq!(none.client(ip("1.2.3.4"), &spoofed), ip("1.2.3.4"));

        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(proxies.client(ip("1.2.3.4"), &spoofed), ip("1.2.3.4"));
        // Behind one proxy: the address it appended.
        let one = forwarded(&["1.2.3.4"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &one), ip("1.2.3.4"));
        // A client's own entries are left of the proxy's and not read.
        let forged = forwarded(&["6.6.6.6, 1.2.3.4"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &forged), ip("1.2.3.4"));
        // Two proxies, the header split over two lines.
        let chain = forwarded(&["6.6.6.6, 1.2.3.4", "10.0.0.9"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &chain), ip("1.2.3.4"));
        // Ports and brackets are tolerated.
        let ported = forwarded(&["[2001:db8::1]:443, 1.2.3.4:5678"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &ported), ip("1.2.3.4"));
        // Garbage from a trusted proxy ends the walk at that proxy.
        let garbage = forwarded(&["1.2.3.4, unknown"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &garbage), ip("10.0.0.1"));
        // Only trusted hops: the leftmost.
        let internal = forwarded(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &internal), ip("10.1.1.1"));
        // A trusted proxy that sends no header is the client.
        let bare = http::HeaderMap::new();
        assert_eq!(proxies.client(ip("10.0.0.1"), &bare), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(address_key(ip("1.2.3.4")), "1.2.3.4");
        assert_eq!(address_key(ip("::ffff:1.2.3.4")), "1.2.3.4");
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
    }
}
