//! Request IDs: a UUIDv7 per request (time-ordered, so log lines sort by
//! arrival), or the ID a trusted proxy in front already assigned.

use http::{HeaderMap, HeaderValue};

pub const HEADER: &str = "x-request-id";

/// Longest incoming ID we keep from a trusted proxy.
const MAX_INCOMING: usize = 128;

pub fn generate() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).expect("a UUID is a valid header value")
}

/// Keep a trusted proxy's ID if it is short and printable; else mint one.
pub fn assign(headers: &HeaderMap, peer_trusted: bool) -> HeaderValue {
    if peer_trusted {
        if let Some(v) = headers.get(HEADER) {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= MAX_INCOMING && b.iter().all(|c| c.is_ascii_graphic()) {
                return v.clone();
            }
        }
    }
    generate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_and_unique() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }

    #[test]
    fn incoming_id_is_kept_only_from_trusted_peers() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("edge-123"));
        assert_eq!(assign(&h, true), "edge-123");
        assert_ne!(assign(&h, false), "edge-123");
        h.insert(HEADER, HeaderValue::from_static("has space"));
        assert_ne!(assign(&h, true), "has space");
    }
}
