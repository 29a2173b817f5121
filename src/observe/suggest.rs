//! What policy refused, remembered so `clawgate suggest` can propose the
//! env-file change that would have allowed it.
//!
//! On the deny path (and for `MODE=audit` would-denies) the proxy records,
//! per member, the distinct origins and source networks it saw, with
//! counts. The structure is bounded: at most [`MAX_ENTRIES_PER_MEMBER`]
//! distinct origins and as many networks per member; further distinct
//! values are only counted as dropped. Networks are kept at host
//! granularity for IPv4 (`/32`) and at the usual site/host prefix for IPv6
//! (`/64`, which privacy addresses rotate within), so a suggestion is the
//! least a reviewer has to widen by hand.
//!
//! The admin listener serves [`Suggestions::report`] as JSON at `/suggest`.
//! The report is filtered against the *current* snapshot: what a reload
//! has since allowed disappears from it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::Snapshot;
use clawgate_policy::cidr;
use clawgate_policy::origin::{self, Presented};

/// Most distinct origins, and most distinct networks, kept per member.
pub const MAX_ENTRIES_PER_MEMBER: usize = 64;
/// Member names come from config, so this only guards against misuse.
const MAX_MEMBERS: usize = 4096;
/// Prefix an IPv4 client address is recorded at.
pub const V4_PREFIX: u8 = 32;
/// Prefix an IPv6 client address is recorded at.
pub const V6_PREFIX: u8 = 64;
/// The `ORIGINS` entry for clients that send no `Origin`.
const NONE: &str = "none";

#[derive(Default)]
struct Seen {
    origins: BTreeMap<String, u64>,
    networks: BTreeMap<IpNet, u64>,
    /// `null`, origins with a path, malformed values: no `ORIGINS` entry
    /// can allow them, so they are counted, not suggested.
    unusable_origins: u64,
    /// Distinct values refused past the per-member cap.
    dropped: u64,
    recorded: u64,
}

impl Seen {
    fn count(&mut self, origin_key: Option<&str>, net: &IpNet) {
        self.recorded += 1;
        match origin_key {
            Some(o) => bump(&mut self.origins, o, &mut self.dropped),
            None => self.unusable_origins += 1,
        }
        bump(&mut self.networks, net, &mut self.dropped);
    }
}

/// Denied origins and networks per member, bounded.
#[derive(Default)]
pub struct Suggestions {
    seen: Mutex<HashMap<String, Seen>>,
}

/// One suggested value and how many refused requests carried it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub value: String,
    pub count: u64,
}

/// What one member would need, against the current config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberReport {
    pub member: String,
    pub mode: String,
    pub file: String,
    /// Requests recorded for this member since start.
    pub recorded: u64,
    /// Origins refused and still not allowed, most frequent first.
    pub origins: Vec<Count>,
    /// Networks refused and still not allowed, most frequent first.
    pub networks: Vec<Count>,
    pub current_origins: Vec<String>,
    pub current_cidrs: Vec<String>,
    pub unusable_origins: u64,
    pub dropped: u64,
}

/// The `/suggest` document.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub max_entries_per_member: usize,
    pub members: Vec<MemberReport>,
}

/// The network a client address is recorded under.
pub fn network_of(ip: IpAddr) -> IpNet {
    let ip = cidr::canonical(ip);
    let prefix = if ip.is_ipv4() { V4_PREFIX } else { V6_PREFIX };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

fn bump<Q, K>(map: &mut BTreeMap<K, u64>, key: &Q, dropped: &mut u64)
where
    K: Ord + std::borrow::Borrow<Q>,
    Q: Ord + ToOwned<Owned = K> + ?Sized,
{
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else if map.len() < MAX_ENTRIES_PER_MEMBER {
        map.insert(key.to_owned(), 1);
    } else {
        *dropped += 1;
    }
}

/// How a presented `Origin` is counted: normalised (`none` when absent),
/// or `None` when no `ORIGINS` entry could allow it. The proxy computes it
/// once per distinct refusal on a connection (see `proxy::conn`).
pub fn origin_key(origin: Option<&[u8]>) -> Option<String> {
    match origin::parse_presented(origin) {
        Presented::Absent => Some(NONE.to_string()),
        Presented::Valid(o) => Some(o.to_string()),
        _ => None,
    }
}

impl Suggestions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember one refused (or audit would-deny) request of `member`:
    /// its `Origin` header as sent (`None` when absent) and client address.
    pub fn record(&self, member: &str, origin: Option<&str>, ip: IpAddr) {
        let key = origin_key(origin.map(str::as_bytes));
        self.record_key(member, key.as_deref(), ip);
    }

    /// [`Suggestions::record`] with the Origin already made an [`origin_key`].
    pub fn record_key(&self, member: &str, origin_key: Option<&str>, ip: IpAddr) {
        let net = network_of(ip);
        let mut map = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seen) = map.get_mut(member) {
            seen.count(origin_key, &net);
        } else if map.len() < MAX_MEMBERS {
            let seen = map.entry(member.to_string()).or_default();
            seen.count(origin_key, &net);
        }
    }

    /// What each configured member would need that `snap` does not allow
    /// yet. Members with nothing to suggest are left out.
    pub fn report(&self, snap: &Snapshot) -> Report {
        let map = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut members = Vec::new();
        for m in &snap.members {
            let Some(seen) = map.get(&m.name) else {
                continue;
            };
            let mut origins: Vec<Count> = seen
                .origins
                .iter()
                .filter(|(o, _)| {
                    let presented = if o.as_str() == NONE {
                        Presented::Absent
                    } else {
                        origin::parse_presented(Some(o.as_bytes()))
                    };
                    !m.origins.allows(&presented)
                })
                .map(|(o, n)| Count {
                    value: o.clone(),
                    count: *n,
                })
                .collect();
            let mut networks: Vec<Count> = seen
                .networks
                .iter()
                .filter(|(net, _)| {
                    !(m.egress.contains(net.network()) && m.egress.contains(net.broadcast()))
                })
                .map(|(net, n)| Count {
                    value: net.to_string(),
                    count: *n,
                })
                .collect();
            if origins.is_empty() && networks.is_empty() && seen.unusable_origins == 0 {
                continue;
            }
            let by_count = |a: &Count, b: &Count| b.count.cmp(&a.count).then(a.value.cmp(&b.value));
            origins.sort_by(by_count);
            networks.sort_by(by_count);
            members.push(MemberReport {
                member: m.name.clone(),
                mode: m.mode.as_str().to_string(),
                file: m.file.display().to_string(),
                recorded: seen.recorded,
                origins,
                networks,
                current_origins: m.origins.patterns().iter().map(|p| p.to_string()).collect(),
                current_cidrs: m.egress.nets().iter().map(|n| n.to_string()).collect(),
                unusable_origins: seen.unusable_origins,
                dropped: seen.dropped,
            });
        }
        Report {
            max_entries_per_member: MAX_ENTRIES_PER_MEMBER,
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_recorded_at_host_or_site_prefix() {
        assert_eq!(network_of(ip("10.1.2.3")).to_string(), "10.1.2.3/32");
        assert_eq!(network_of(ip("::ffff:10.1.2.3")).to_string(), "10.1.2.3/32");
        assert_eq!(
            network_of(ip("2001:db8:1:2:aaaa::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn distinct_values_are_capped_per_member_and_counted() {
        let s = Suggestions::new();
        for i in 0..100u32 {
            let o = format!("https://h{i}.example.com");
            s.record("alice", Some(&o), ip("10.0.0.1"));
        }
        s.record("alice", Some("https://h0.example.com"), ip("10.0.0.1"));
        let map = s.seen.lock().unwrap();
        let a = &map["alice"];
        assert_eq!(a.origins.len(), MAX_ENTRIES_PER_MEMBER);
        assert_eq!(a.origins["https://h0.example.com"], 2);
        assert_eq!(a.networks.len(), 1);
        assert_eq!(a.networks.values().sum::<u64>(), 101);
        assert_eq!(a.dropped, 100 - MAX_ENTRIES_PER_MEMBER as u64);
        assert_eq!(a.recorded, 101);
    }

    #[test]
    fn origins_are_normalised_and_unusable_ones_only_counted() {
        let s = Suggestions::new();
        s.record("bob", Some("HTTPS://App.Example.com:443"), ip("10.0.0.1"));
        s.record("bob", None, ip("10.0.0.1"));
        s.record("bob", Some("null"), ip("10.0.0.1"));
        s.record("bob", Some("https://a.example.com/path"), ip("10.0.0.1"));
        let map = s.seen.lock().unwrap();
        let b = &map["bob"];
        assert_eq!(
            b.origins.keys().collect::<Vec<_>>(),
            vec!["https://app.example.com", "none"]
        );
        assert_eq!(b.unusable_origins, 2);
    }
}
