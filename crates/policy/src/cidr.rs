//! Sets of IPv4/IPv6 networks with O(log n) membership.
//!
//! A member's `EGRESS_CIDRS`, a public route's sources and the trusted proxies
//! are all `CidrSet`s. Networks are merged into sorted, disjoint integer
//! ranges once at load time, so a lookup is one binary search whether the set
//! holds one network or a hundred thousand. IPv4-mapped IPv6 addresses
//! (`::ffff:10.0.0.1`) are matched as the IPv4 address they carry.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    nets: Vec<IpNet>,
}

impl CidrSet {
    pub fn new(nets: Vec<IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        CidrSet {
            v4: merge(v4),
            v6: merge(v6),
            nets,
        }
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// The networks as configured, for display in diffs and `check`.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// `::ffff:a.b.c.d` is the IPv4 address a.b.c.d seen through a dual-stack socket.
#[inline]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn merge<T: Ord + Copy + num::One>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = out.last_mut() {
            // Overlapping or adjacent: extend. `last.1 + 1` cannot overflow
            // unless last.1 is the maximum, in which case it covers `start`.
            if start <= last.1 || last.1.checked_inc() == Some(start) {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end));
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let idx = ranges.partition_point(|&(start, _)| start <= x);
    idx > 0 && ranges[idx - 1].1 >= x
}

/// Parse one CIDR or bare address (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "'{s}' is not a CIDR (expected e.g. 10.0.0.0/8, 2001:db8::/32 or a single address)"
    ))
}

/// Parse a list separated by commas and/or whitespace.
pub fn parse_list(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(parse_net)
        .collect()
}

mod num {
    pub trait One: Sized {
        fn checked_inc(self) -> Option<Self>;
    }
    impl One for u32 {
        fn checked_inc(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
    impl One for u128 {
        fn checked_inc(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CidrSet {
        CidrSet::new(parse_list(s).unwrap())
    }

    #[test]
    fn ipv4_membership_respects_prefix_edges() {
        let s = set("10.0.0.0/8, 192.168.1.0/24");
        assert!(s.contains("10.255.255.255".parse().unwrap()));
        assert!(s.contains("192.168.1.0".parse().unwrap()));
        assert!(!s.contains("192.168.2.0".parse().unwrap()));
        assert!(!s.contains("11.0.0.0".parse().unwrap()));
        assert!(!s.contains("9.255.255.255".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_ipv4_networks() {
        let s = set("10.0.0.0/8");
        assert!(s.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!s.contains("::ffff:11.1.2.3".parse().unwrap()));
    }

    #[test]
    fn ipv6_networks_and_bare_addresses() {
        let s = set("2001:db8::/32 ::1");
        assert!(s.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(s.contains("::1".parse().unwrap()));
        assert!(!s.contains("2001:db9::1".parse().unwrap()));
        assert!(!s.contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let s = set("10.0.0.0/24 10.0.1.0/24 10.0.0.128/25 0.0.0.0/0");
        assert_eq!(s.v4.len(), 1);
        assert!(s.contains("255.255.255.255".parse().unwrap()));
    }

    #[test]
    fn garbage_is_refused_with_an_example() {
        let err = parse_list("10.0.0.0/33").unwrap_err();
        assert!(err.contains("expected e.g."), "{err}");
        assert!(parse_list("example.com").is_err());
    }

    #[test]
    fn empty_set_contains_nothing() {
        let s = CidrSet::default();
        assert!(!s.contains("127.0.0.1".parse().unwrap()));
    }
}
