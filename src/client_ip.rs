//! Who is the client: the socket peer, or a hop of `X-Forwarded-For` when
//! the peer is a trusted proxy.
//!
//! `X-Forwarded-For` is read only when the socket peer is in
//! `[client_ip] trusted_proxies`; then the rightmost hop that is not itself a
//! trusted proxy is the client (hops to its left were written by parties we
//! cannot vouch for). From any other peer the header is ignored and later
//! dropped, so a caller cannot choose its own address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clawgate_policy::cidr::{canonical, CidrSet};

/// How the client IP was derived, for the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSource {
    Socket,
    /// The n-th `X-Forwarded-For` hop counted from the right (1 = last).
    ForwardedFor {
        hop_from_right: usize,
    },
}

/// As the access log names it: `socket`, or `xff-N`.
impl std::fmt::Display for IpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpSource::Socket => f.write_str("socket"),
            IpSource::ForwardedFor { hop_from_right } => write!(f, "xff-{hop_from_right}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp {
    pub ip: IpAddr,
    pub source: IpSource,
    /// Whether the socket peer is a trusted proxy (its forwarded headers and
    /// request ID may be kept).
    pub peer_trusted: bool,
}

/// A trusted proxy sent an `X-Forwarded-For` we cannot read.
#[derive(Debug, PartialEq, Eq)]
pub struct BadForwardedFor(pub String);

/// `forwarded_for`: the request's `X-Forwarded-For` values, in order.
pub fn resolve<'v>(
    peer: SocketAddr,
    forwarded_for: impl IntoIterator<Item = &'v [u8]>,
    trusted: &CidrSet,
) -> Result<ClientIp, BadForwardedFor> {
    let peer_ip = canonical(peer.ip());
    let socket = ClientIp {
        ip: peer_ip,
        source: IpSource::Socket,
        peer_trusted: false,
    };
    if trusted.is_empty() || !trusted.contains(peer_ip) {
        return Ok(socket);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in forwarded_for {
        let text = crate::message::fields::text(value)
            .ok_or_else(|| BadForwardedFor("X-Forwarded-For is not visible ASCII".into()))?;
        for hop in text.split(',') {
            let hop = hop.trim();
            if hop.is_empty() {
                continue;
            }
            hops.push(parse_hop(hop).ok_or_else(|| {
                BadForwardedFor(format!(
                    "X-Forwarded-For hop '{}' is not an IP address",
                    hop.chars().take(64).collect::<String>()
                ))
            })?);
            if hops.len() > 64 {
                return Err(BadForwardedFor(
                    "X-Forwarded-For has more than 64 hops".into(),
                ));
            }
        }
    }
    let trusted_peer = ClientIp {
        peer_trusted: true,
        ..socket
    };
    if hops.is_empty() {
        return Ok(trusted_peer);
    }
    for (i, ip) in hops.iter().rev().enumerate() {
        if !trusted.contains(*ip) {
            return Ok(ClientIp {
                ip: *ip,
                source: IpSource::ForwardedFor {
                    hop_from_right: i + 1,
                },
                peer_trusted: true,
            });
        }
    }
    // Every hop is a trusted proxy: the leftmost is as far as we can see.
    Ok(ClientIp {
        ip: hops[0],
        source: IpSource::ForwardedFor {
            hop_from_right: hops.len(),
        },
        peer_trusted: true,
    })
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_policy::cidr::parse_list;

    fn trusted() -> CidrSet {
        CidrSet::new(parse_list("10.0.0.0/8").unwrap())
    }

    fn xff(values: &[&'static str]) -> Vec<&'static [u8]> {
        values.iter().map(|v| v.as_bytes()).collect()
    }

    #[test]
    fn untrusted_peer_forwarded_for_is_ignored() {
        let r = resolve(
            "203.0.113.5:1000".parse().unwrap(),
            xff(&["1.1.1.1"]),
            &trusted(),
        )
        .unwrap();
        assert_eq!(r.ip, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(r.source, IpSource::Socket);
        assert!(!r.peer_trusted);
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        let r = resolve("10.0.0.2:1000".parse().unwrap(), h, &trusted()).unwrap();
        assert_eq!(r.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(r.source, IpSource::ForwardedFor { hop_from_right: 2 });
    }

    #[test]
    fn all_trusted_hops_fall_back_to_leftmost() {
        let h = xff(&["10.9.9.9, 10.1.1.1"]);
        let r = resolve("10.0.0.2:1000".parse().unwrap(), h, &trusted()).unwrap();
        assert_eq!(r.ip, "10.9.9.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let r = resolve(
            "10.0.0.2:1000".parse().unwrap(),
            std::iter::empty(),
            &trusted(),
        )
        .unwrap();
        assert_eq!(r.ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert!(r.peer_trusted);
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        let r = resolve(
            "10.0.0.2:1".parse().unwrap(),
            xff(&["[2001:db8::1]:443"]),
            &trusted(),
        )
        .unwrap();
        assert_eq!(r.ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        let r = resolve(
            "10.0.0.2:1".parse().unwrap(),
            xff(&["192.0.2.1:8080"]),
            &trusted(),
        )
        .unwrap();
        assert_eq!(r.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_from_trusted_peer_is_an_error() {
        for bad in ["unknown", "1.2.3", "::ffff:zz", "1.2.3.4:99999"] {
            assert!(
                resolve("10.0.0.2:1".parse().unwrap(), xff(&[bad]), &trusted()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn mapped_peer_is_canonicalised() {
        let r = resolve(
            "[::ffff:10.0.0.2]:1".parse().unwrap(),
            xff(&["192.0.2.1"]),
            &trusted(),
        )
        .unwrap();
        assert_eq!(r.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
