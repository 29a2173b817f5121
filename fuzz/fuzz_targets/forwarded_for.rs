//! `X-Forwarded-For` from a trusted peer: any header values give a client
//! address or `BadForwardedFor`, never a panic, and an untrusted peer's
//! header never chooses the address.
//!
//! Input: lines, each one `X-Forwarded-For` header value (lines that are
//! not valid header values are dropped, as hyper would refuse them).
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use clawgate_policy::cidr::{self, CidrSet};
use clawgate::client_ip::{self, IpSource};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn trusted() -> &'static CidrSet {
    static SET: OnceLock<CidrSet> = OnceLock::new();
    SET.get_or_init(|| {
        CidrSet::new(cidr::parse_list("10.0.0.0/8 127.0.0.1/32 fd00::/8").expect("valid CIDRs"))
    })
}

fn values(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all("x-forwarded-for")
        .into_iter()
        .map(HeaderValue::as_bytes)
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(32) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", v);
        }
    }
    for peer in ["10.0.0.2:4000", "[fd00::2]:4000", "[::ffff:10.0.0.2]:1"] {
        let peer: SocketAddr = peer.parse().expect("peer");
        if let Ok(c) = client_ip::resolve(peer, values(&headers), trusted()) {
            assert!(c.peer_trusted);
            if c.source == IpSource::Socket {
                assert!(trusted().contains(c.ip));
            }
        }
    }
    let stranger: SocketAddr = "203.0.113.9:4000".parse().expect("peer");
    let c = client_ip::resolve(stranger, values(&headers), trusted())
        .expect("untrusted peer never fails");
    assert_eq!(c.ip, stranger.ip());
    assert_eq!(c.source, IpSource::Socket);
});
