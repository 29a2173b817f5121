//! Authorization of an identified member: a pure function over plain data.
//!
//! Origin first (a browser on the wrong page must see the origins diff, not
//! a CIDR error it cannot act on), then the client address. The same
//! function answers the live proxy and `clawgate explain`.

use std::net::IpAddr;

use serde::Serialize;

use crate::member::Member;
use crate::origin::{self, OriginDiff};
use crate::Reason;

/// Most CIDRs echoed back in a 403; a member with thousands gets a count.
const MAX_LISTED_CIDRS: usize = 32;

/// Allowed, or the first reason to refuse.
#[inline]
pub fn evaluate(member: &Member, origin: Option<&[u8]>, ip: IpAddr) -> Result<(), Reason> {
    if !member.origins.allows_raw(origin) {
        return Err(if origin.is_none() {
            Reason::OriginMissing
        } else {
            Reason::OriginNotAllowed
        });
    }
    if !member.egress.contains(ip) {
        return Err(Reason::CidrNotAllowed);
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpDiff {
    pub presented: String,
    pub allowed: Vec<String>,
}

/// The full explanation for a member's request: both halves, always.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub origin: OriginDiff,
    pub client_ip: IpDiff,
}

/// A diff with its JSON, serialised once: the 403 body and the log line
/// both embed it, and a client repeating a refused request on one
/// connection gets the same one again (see `proxy::conn`).
#[derive(Debug)]
pub struct Explained {
    pub diff: Diff,
    /// `{"origin":…,"client_ip":…}`.
    pub json: String,
}

impl Explained {
    pub fn new(diff: Diff) -> Self {
        let json = serde_json::to_string(&diff).unwrap_or_else(|_| "{}".into());
        Explained { diff, json }
    }
}

/// Build the diff shown in 403 bodies and log lines (deny path only).
pub fn explain(member: &Member, origin: Option<&[u8]>, ip: IpAddr) -> Diff {
    let presented = origin::parse_presented(origin);
    Diff {
        origin: origin::diff(&presented, &member.origins),
        client_ip: ip_diff(member.egress.nets(), ip),
    }
}

pub fn ip_diff(nets: &[ipnet::IpNet], ip: IpAddr) -> IpDiff {
    let mut allowed: Vec<String> = nets
        .iter()
        .take(MAX_LISTED_CIDRS)
        .map(|n| n.to_string())
        .collect();
    if nets.len() > MAX_LISTED_CIDRS {
        allowed.push(format!("… and {} more", nets.len() - MAX_LISTED_CIDRS));
    }
    IpDiff {
        presented: ip.to_string(),
        allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::member_with;

    #[test]
    fn allowed_origin_and_network_pass() {
        let m = member_with("https://app.example.com none", "10.0.0.0/8");
        assert_eq!(
            evaluate(
                &m,
                Some(b"https://app.example.com"),
                "10.1.1.1".parse().unwrap()
            ),
            Ok(())
        );
        assert_eq!(evaluate(&m, None, "10.1.1.1".parse().unwrap()), Ok(()));
    }

    #[test]
    fn origin_is_checked_before_the_network() {
        let m = member_with("https://app.example.com", "10.0.0.0/8");
        assert_eq!(
            evaluate(
                &m,
                Some(b"https://evil.example.net"),
                "192.0.2.1".parse().unwrap()
            ),
            Err(Reason::OriginNotAllowed)
        );
        assert_eq!(
            evaluate(&m, None, "10.1.1.1".parse().unwrap()),
            Err(Reason::OriginMissing)
        );
    }

    #[test]
    fn address_outside_egress_cidrs_is_refused() {
        let m = member_with("none", "10.0.0.0/8");
        assert_eq!(
            evaluate(&m, None, "192.0.2.1".parse().unwrap()),
            Err(Reason::CidrNotAllowed)
        );
        assert_eq!(
            evaluate(&m, None, "::ffff:10.0.0.1".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn diff_carries_both_halves() {
        let m = member_with("https://app.example.com", "10.0.0.0/8");
        let d = explain(
            &m,
            Some(b"http://app.example.com"),
            "192.0.2.1".parse().unwrap(),
        );
        assert_eq!(d.origin.nearest.as_deref(), Some("https://app.example.com"));
        assert_eq!(d.client_ip.presented, "192.0.2.1");
        assert_eq!(d.client_ip.allowed, vec!["10.0.0.0/8"]);
    }

    #[test]
    fn huge_cidr_lists_are_summarised() {
        let nets: Vec<ipnet::IpNet> = (0..100u32)
            .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
            .collect();
        let d = ip_diff(&nets, "192.0.2.1".parse().unwrap());
        assert_eq!(d.allowed.len(), MAX_LISTED_CIDRS + 1);
        assert!(d.allowed.last().unwrap().contains("68 more"));
    }
}
