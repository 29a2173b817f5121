//! PROXY protocol v2 (HAProxy's binary header), for L4 load balancers in
//! front of clawgate: the real client address arrives before any TLS or
//! HTTP byte. Accepted only from `trusted_proxies` peers; anyone else could
//! claim any address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A health check from the balancer itself: keep the socket peer.
    Local,
    Proxied {
        source: SocketAddr,
    },
}

/// Parse the fixed 16-byte prefix: the length of the rest.
pub fn parse_prefix(p: &[u8; 16]) -> Result<usize, String> {
    if p[..12] != SIGNATURE {
        return Err(
            "no PROXY v2 signature (is the load balancer sending PROXY protocol v2?)".into(),
        );
    }
    if p[12] >> 4 != 2 {
        return Err(format!(
            "PROXY protocol version {} (only 2 is supported)",
            p[12] >> 4
        ));
    }
    Ok(usize::from(u16::from_be_bytes([p[14], p[15]])))
}

/// Parse prefix + address block.
pub fn parse(prefix: &[u8; 16], rest: &[u8]) -> Result<Header, String> {
    match prefix[12] & 0x0f {
        0x0 => return Ok(Header::Local),
        0x1 => {}
        c => return Err(format!("unknown PROXY command {c}")),
    }
    match prefix[13] {
        0x11 if rest.len() >= 12 => {
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            let port = u16::from_be_bytes([rest[8], rest[9]]);
            Ok(Header::Proxied {
                source: SocketAddr::new(IpAddr::V4(ip), port),
            })
        }
        0x21 if rest.len() >= 36 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&rest[..16]);
            let port = u16::from_be_bytes([rest[32], rest[33]]);
            Ok(Header::Proxied {
                source: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(b)), port),
            })
        }
        0x00 => Ok(Header::Local),
        f => Err(format!(
            "unsupported PROXY address family/protocol 0x{f:02x} or short block"
        )),
    }
}

/// Read the header from a fresh connection, bounded by `timeout`.
pub async fn read(stream: &mut TcpStream, timeout: Duration) -> Result<Header, String> {
    let fut = async {
        let mut prefix = [0u8; 16];
        stream
            .read_exact(&mut prefix)
            .await
            .map_err(|e| format!("reading PROXY header: {e}"))?;
        let len = parse_prefix(&prefix)?;
        let mut rest = vec![0u8; len];
        stream
            .read_exact(&mut rest)
            .await
            .map_err(|e| format!("reading PROXY addresses: {e}"))?;
        parse(&prefix, &rest)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "PROXY header timed out".to_string())?
}

/// Encode a v2 header (used by tests and `probe`-style tools).
pub fn encode(source: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.push(0x21);
    match (source, dest) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            h.push(0x11);
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&s.ip().octets());
            h.extend_from_slice(&d.ip().octets());
            h.extend_from_slice(&s.port().to_be_bytes());
            h.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            h.push(0x21);
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&v6(s).octets());
            h.extend_from_slice(&v6(d).octets());
            h.extend_from_slice(&s.port().to_be_bytes());
            h.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(src: &str, dst: &str) -> Header {
        let bytes = encode(src.parse().unwrap(), dst.parse().unwrap());
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&bytes[..16]);
        let len = parse_prefix(&prefix).unwrap();
        assert_eq!(len, bytes.len() - 16);
        parse(&prefix, &bytes[16..]).unwrap()
    }

    #[test]
    fn ipv4_and_ipv6_sources_roundtrip() {
        assert_eq!(
            roundtrip("198.51.100.7:5555", "10.0.0.1:443"),
            Header::Proxied {
                source: "198.51.100.7:5555".parse().unwrap()
            }
        );
        assert_eq!(
            roundtrip("[2001:db8::7]:5555", "[2001:db8::1]:443"),
            Header::Proxied {
                source: "[2001:db8::7]:5555".parse().unwrap()
            }
        );
    }

    #[test]
    fn garbage_and_v1_are_refused() {
        let mut p = [0u8; 16];
        p[..6].copy_from_slice(b"PROXY ");
        assert!(parse_prefix(&p).is_err());
        let mut p = [0u8; 16];
        p[..12].copy_from_slice(&SIGNATURE);
        p[12] = 0x11;
        assert!(parse_prefix(&p).unwrap_err().contains("version 1"));
    }

    #[test]
    fn local_command_keeps_the_peer() {
        let mut p = [0u8; 16];
        p[..12].copy_from_slice(&SIGNATURE);
        p[12] = 0x20;
        assert_eq!(parse(&p, &[]).unwrap(), Header::Local);
    }

    #[test]
    fn short_address_block_is_an_error() {
        let mut p = [0u8; 16];
        p[..12].copy_from_slice(&SIGNATURE);
        p[12] = 0x21;
        p[13] = 0x11;
        assert!(parse(&p, &[1, 2, 3]).is_err());
    }
}
