//! Request IDs: a UUIDv7 per request (time-ordered, so log lines sort by
//! arrival), or the ID a trusted proxy in front already assigned.

use std::fmt;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// The header a request ID travels in, both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub const HEADER: &str = "x-request-id";

/// Longest incoming ID we keep from a trusted proxy.
const MAX_INCOMING: usize = 128;

/// One request's ID. A minted one is held inline, so making, copying and
/// writing it allocate nothing (a `HeaderValue` allocates its bytes,
/// then the shared handle its first clone makes).
/// Always visible ASCII.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Minted(Hex),
    /// A trusted proxy's, checked by [`assign`]; or a fixed placeholder.
    Kept(Bytes),
}

/// A minted ID's text, word-aligned: `str::from_utf8` checks aligned
/// ASCII a word at a time and misaligned bytes one by one, and an enum
/// would put a plain byte array at an odd offset.
#[derive(Clone, PartialEq, Eq, Hash)]
#[repr(align(8))]
struct Hex([u8; 36]);

impl RequestId {
    /// Before the request has one (it is assigned first thing).
    pub const UNSET: RequestId = RequestId(Repr::Kept(Bytes::from_static(b"-")));

    /// A fixed ID (tests); must be visible ASCII.
    pub fn from_static(id: &'static str) -> RequestId {
        assert!(
            id.bytes().all(|b| b.is_ascii_graphic()),
            "request IDs are visible ASCII"
        );
        RequestId(Repr::Kept(Bytes::from_static(id.as_bytes())))
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Minted(Hex(b)) => b,
            Repr::Kept(b) => b,
        }
    }

    pub fn as_str(&self) -> &str {
        // Hex and hyphens, or bytes `assign` checked are visible ASCII.
        std::str::from_utf8(self.as_bytes()).unwrap_or("-")
    }

    /// For hyper's side, which writes heads from a `HeaderMap`.
    pub fn to_header_value(&self) -> HeaderValue {
        match &self.0 {
            Repr::Minted(Hex(b)) => HeaderValue::from_bytes(b),
            Repr::Kept(b) => HeaderValue::from_maybe_shared(b.clone()),
        }
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for RequestId {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// A fresh UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74
/// random bits, laid out and written out by the `uuid` crate.
///
/// The random bits come from a per-thread wyrand stream seeded by the OS:
/// IDs need to be unique and time-ordered, not unpredictable (they are
/// echoed to the client and logged). `uuid`'s own sources make a system
/// call per ID (`getrandom`) or run a ChaCha generator (`fast-rng`),
/// either of which costs more than the rest of the request's ID.
pub fn generate() -> RequestId {
    generate_at(Clock::now().since_epoch)
}

/// [`generate`] with the time the request started (`since_epoch`), read
/// once per request for everything that needs it.
pub fn generate_at(since_epoch: std::time::Duration) -> RequestId {
    let ms = since_epoch.as_secs() * 1000 + u64::from(since_epoch.subsec_millis());
    let random = random_bytes();
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
    let mut text = Hex([0; 36]);
    id.hyphenated().encode_lower(&mut text.0);
    RequestId(Repr::Minted(text))
}

/// The 80 bits [`generate_at`] needs (74 of them used), from this
/// thread's stream.
fn random_bytes() -> [u8; 10] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            // Without OS randomness, time and thread still separate streams.
            if getrandom::fill(&mut seed).is_err() {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                seed = (t ^ (&seed as *const _ as u64)).to_le_bytes();
            }
            u64::from_le_bytes(seed)
        });
    }
    let (r1, r2) = STATE.with(|s| {
        let next = || {
            let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(x);
            let m = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
            (m as u64) ^ ((m >> 64) as u64)
        };
        (next(), next())
    });
    let mut out = [0; 10];
    out[..8].copy_from_slice(&r1.to_le_bytes());
    out[8..].copy_from_slice(&r2.to_le_bytes()[..2]);
    out
}

/// Keep a trusted proxy's ID (`incoming`, the request's `X-Request-Id`)
/// if it is short and printable; else mint one at `since_epoch`.
pub fn assign(
    incoming: Option<&[u8]>,
    peer_trusted: bool,
    since_epoch: std::time::Duration,
) -> RequestId {
    if peer_trusted {
        if let Some(b) = incoming {
            if !b.is_empty() && b.len() <= MAX_INCOMING && b.iter().all(|c| c.is_ascii_graphic()) {
                return RequestId(Repr::Kept(Bytes::copy_from_slice(b)));
            }
        }
    }
    generate_at(since_epoch)
}

/// The wall clock, read once when a request starts: its ID's timestamp,
/// token expiry, the denial line's time and `token_last_used` all come
/// from this one reading, not a read and a conversion each.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub now: std::time::SystemTime,
    pub since_epoch: std::time::Duration,
}

impl Clock {
    pub fn now() -> Clock {
        let now = std::time::SystemTime::now();
        Clock {
            now,
            since_epoch: now
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_unique_and_time_ordered() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        let ms = |v: &RequestId| {
            let u = uuid::Uuid::parse_str(v.as_str()).unwrap();
            let (secs, nanos) = u.get_timestamp().unwrap().to_unix();
            secs * 1000 + u64::from(nanos) / 1_000_000
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(ms(&a) <= ms(&b) && now.abs_diff(ms(&b)) < 5_000);
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(many.len(), 10_000);
        // Another thread draws from its own stream.
        let other = std::thread::spawn(generate).join().unwrap();
        assert!(!many.contains(&other));
    }

    #[test]
    fn incoming_id_is_kept_only_from_trusted_peers() {
        assert_eq!(
            assign(Some(b"edge-123"), true, Clock::now().since_epoch),
            "edge-123"
        );
        assert_ne!(
            assign(Some(b"edge-123"), false, Clock::now().since_epoch),
            "edge-123"
        );
        assert_ne!(
            assign(Some(b"has space"), true, Clock::now().since_epoch),
            "has space"
        );
        assert_ne!(
            assign(Some(&[b'x'; 129]), true, Clock::now().since_epoch)
                .as_bytes()
                .len(),
            129
        );
    }
}
