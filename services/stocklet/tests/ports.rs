//! The default ports stay out of the kernel's ephemeral port range, so a
//! client that keeps dialling a stopped service on loopback can never
//! connect to itself on its port (a TCP self-connect) and keep the
//! restarted service from binding it.

use std::ops::RangeInclusive;

/// The ephemeral range this machine uses, and Linux's default beside it.
fn ephemeral_ranges() -> Vec<RangeInclusive<u16>> {
    let mut ranges = vec![32768..=60999];
    let local = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|e| panic!("cannot read ip_local_port_range (Linux only): {e}"));
    let bounds: Vec<u16> = local
        .split_whitespace()
        .map(|bound| {
            bound
                .parse()
                .unwrap_or_else(|e| panic!("bad bound {bound:?}: {e}"))
        })
        .collect();
    assert_eq!(bounds.len(), 2, "{local:?}");
    ranges.push(bounds[0]..=bounds[1]);
    ranges
}

fn port(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

#[test]
fn default_ports_are_outside_the_ephemeral_range() {
    let listen = [
        stocklet_auth::DEFAULT_ADDR,
        stocklet_user::DEFAULT_ADDR,
        stocklet_product::DEFAULT_ADDR,
        stocklet_warehouse::DEFAULT_ADDR,
        stocklet_order::DEFAULT_ADDR,
        stocklet_payment::DEFAULT_ADDR,
        stocklet_shipping::DEFAULT_ADDR,
    ];
    let dialled = stocklet_gateway::BACKENDS.map(|(_, url)| url);
    let ranges = ephemeral_ranges();
    for address in listen.iter().chain(dialled.iter()) {
        let port = port(address);
        assert!(
            ranges.iter().all(|range| !range.contains(&port)),
            "{address} is inside an ephemeral port range {ranges:?}"
        );
    }
    // The gateway dials each service where it listens by default.
    let mut listen_ports: Vec<u16> = listen.iter().map(|a| port(a)).collect();
    let mut dialled_ports: Vec<u16> = dialled.iter().map(|a| port(a)).collect();
    listen_ports.sort_unstable();
    dialled_ports.sort_unstable();
    assert_eq!(listen_ports, dialled_ports);
}
