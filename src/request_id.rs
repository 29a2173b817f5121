//! Request IDs: a UUIDv7 per request (time-ordered, so log lines sort by
//! arrival), or the ID a trusted proxy in front already assigned.

use std::fmt;

use bytes::Bytes;
use http::HeaderValue;

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
/// random bits from a per-thread wyrand stream seeded by the OS.
///
/// IDs need to be unique and time-ordered, not unpredictable (they are
/// echoed to the client and logged), so a seeded generator does, without
/// the ChaCha source and shared counter of `uuid`'s `now_v7`.
pub fn generate() -> RequestId {
    generate_at(Clock::now().since_epoch)
}

/// [`generate`] with the time the request started (`since_epoch`), read
/// once per request for everything that needs it.
pub fn generate_at(since_epoch: std::time::Duration) -> RequestId {
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
    let ms = since_epoch.as_secs() * 1000 + u64::from(since_epoch.subsec_millis());
    let hi = (ms << 16) | 0x7000 | (r1 & 0x0fff);
    let lo = (r2 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let id = (u128::from(hi) << 64) | u128::from(lo);
    RequestId(Repr::Minted(Hex(hyphenated(id))))
}

/// The 8-4-4-4-12 lowercase hex form, made by [`hex16`] all digits at
/// once rather than by the `uuid` crate's formatter or a table lookup
/// per digit: every request mints one.
fn hyphenated(id: u128) -> [u8; 36] {
    let (hi, lo) = (hex16((id >> 64) as u64), hex16(id as u64));
    let mut out = [b'-'; 36];
    out[0..8].copy_from_slice(&hi[0..8]);
    out[9..13].copy_from_slice(&hi[8..12]);
    out[14..18].copy_from_slice(&hi[12..16]);
    out[19..23].copy_from_slice(&lo[0..4]);
    out[24..36].copy_from_slice(&lo[4..16]);
    out
}

/// The 16 lowercase hex digits of `x`, most significant first, all at
/// once: each nibble is spread to a byte of a `u128` of its own (the
/// high nibble of each byte of `x` to the byte before its low one, in
/// the big-endian order the digits are read in), then every byte is
/// turned to its digit with the same few additions.
fn hex16(x: u64) -> [u8; 16] {
    const ONES: u128 = u128::from_ne_bytes([1; 16]);
    const NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    // Byte `j` of `v` (from the least significant) to byte `2j` of the result.
    let spread = |v: u64| {
        let mut s = u128::from(v);
        s = (s | (s << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
        s = (s | (s << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
        (s | (s << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff
    };
    let digits = spread(x & NIBBLES) | (spread((x >> 4) & NIBBLES) << 8);
    // Per byte n (0..=15): '0' + n, and 39 more from 10 up ('a' - '0' - 10);
    // n + 6 reaches bit 4 exactly from 10 up. No byte carries into the next.
    let from_ten = ((digits + 6 * ONES) >> 4) & ONES;
    (digits + u128::from(b'0') * ONES + from_ten * 39).to_be_bytes()
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
    fn the_hyphenated_form_matches_the_uuid_crate() {
        let fixed = [0u128, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210];
        // Every nibble value in every position, and a run of mixed values.
        let nibbles = (0..32).flat_map(|at| (0..16u128).map(move |n| n << (4 * at)));
        let mut x = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834u128;
        let mixed = std::iter::repeat_with(move || {
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(1);
            x
        });
        for id in fixed.into_iter().chain(nibbles).chain(mixed.take(10_000)) {
            let ours = String::from_utf8(hyphenated(id).to_vec()).unwrap();
            assert_eq!(ours, uuid::Uuid::from_u128(id).hyphenated().to_string());
        }
    }

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
