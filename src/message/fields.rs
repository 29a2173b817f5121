//! A request's header fields as the request path reads them: names in
//! lower case, values as they came, in the order they came, all slices of
//! one shared buffer.
//!
//! The lean HTTP/1.1 loop hands over the bytes it read, so a request's
//! fields cost no copy and no allocation; hyper's requests (h2, bodies,
//! upgrades) are copied in from their `HeaderMap` once. A `HeaderMap` per
//! request means two allocations, a hash per name, a reference count per
//! value and a hash per lookup, where the request path asks for a dozen
//! names among a handful of fields: a scan of the spans does that for
//! less than building the map.
//!
//! The bytes are what httparse or hyper accepted: names are tokens,
//! values have no control characters but tab.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use crate::spare::{self, Spares};

/// Where one field sits in the buffer: name, then value, as byte ranges.
#[derive(Clone, Copy, Debug)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Span lists kept per thread for the next request, so a request's fields
/// cost no allocation once a thread has served a few.
const SPARE_LISTS: usize = 256;

thread_local! {
    static SPARE: Spares<Vec<Span>> = const { Spares::new(SPARE_LISTS) };
}

fn span_list() -> Vec<Span> {
    spare::take(&SPARE).unwrap_or_else(|| Vec::with_capacity(16))
}

pub struct Fields {
    buf: Bytes,
    spans: Vec<Span>,
    /// A bit per name present (see [`name_bit`]): most names the request
    /// path asks for are absent, and this answers those without a scan.
    present: u64,
}

/// A name's bit in [`Fields::present`], the same for any case of it.
fn name_bit(name: &[u8]) -> u64 {
    let (Some(first), Some(last)) = (name.first(), name.last()) else {
        return 0;
    };
    // `| 0x20` lower-cases letters and leaves a token's other bytes the
    // same whichever form the name is in.
    let h = name.len() as u32 * 7 + u32::from(first | 0x20) * 3 + u32::from(last | 0x20);
    1 << (h & 63)
}

impl Drop for Fields {
    fn drop(&mut self) {
        if self.spans.capacity() == 0 || self.spans.capacity() > 128 {
            return;
        }
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        spare::give_back(&SPARE, spans);
    }
}

/// Collects the fields of a head being read into `buf` (see
/// [`Builder::push`]), then lower-cases their names in place.
pub struct Builder {
    spans: Vec<Span>,
    present: u64,
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            spans: span_list(),
            present: 0,
        }
    }

    /// A field called `name` (as it is in the buffer) whose name and value
    /// are at these byte ranges of the buffer [`Builder::finish`] will get.
    pub fn push(&mut self, name: &[u8], at: (usize, usize), value: (usize, usize)) {
        self.present |= name_bit(name);
        let name = at;
        self.spans.push(Span {
            name: (name.0 as u32, name.1 as u32),
            value: (value.0 as u32, value.1 as u32),
        });
    }

    /// Lower-case the names in `head` (as `HeaderName` would), then freeze it.
    pub fn finish(self, mut head: BytesMut) -> Fields {
        for s in &self.spans {
            lower_in_place(&mut head[s.name.0 as usize..s.name.1 as usize]);
        }
        Fields {
            buf: head.freeze(),
            spans: self.spans,
            present: self.present,
        }
    }
}

/// `make_ascii_lowercase`, a word at a time, not a byte: a browser's head
/// carries a few hundred bytes of names. Lowering is idempotent, so a
/// name's last word may overlap the one before it.
fn lower_in_place(name: &mut [u8]) {
    let n = name.len();
    if n < 4 {
        name.make_ascii_lowercase();
    } else if n < 8 {
        for at in [0, n - 4] {
            let word: &mut [u8; 4] = (&mut name[at..at + 4]).try_into().expect("4 bytes");
            *word = lower_word(u64::from(u32::from_le_bytes(*word))).to_le_bytes()[..4]
                .try_into()
                .expect("4 bytes");
        }
    } else {
        let mut at = 0;
        loop {
            let last = at >= n - 8;
            let at_word = if last { n - 8 } else { at };
            let word: &mut [u8; 8] = (&mut name[at_word..at_word + 8])
                .try_into()
                .expect("8 bytes");
            *word = lower_word(u64::from_le_bytes(*word)).to_le_bytes();
            if last {
                return;
            }
            at += 8;
        }
    }
}

/// Each byte of `w` in `A..=Z` lowered, the others as they are. Per byte,
/// on its low seven bits: adding 0x3F carries into bit 7 from `A` up,
/// adding 0x25 from `[` up (neither carries into the next byte); bytes
/// with bit 7 set are not ASCII and stay.
fn lower_word(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    let low7 = w & (0x7f * ONES);
    let from_a = low7 + (0x80 - u64::from(b'A')) * ONES;
    let past_z = low7 + (0x7f - u64::from(b'Z')) * ONES;
    let upper = from_a & !past_z & !w & (0x80 * ONES);
    w | (upper >> 2)
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Fields {
    /// No fields.
    pub fn empty() -> Fields {
        Fields {
            buf: Bytes::new(),
            spans: Vec::new(),
            present: 0,
        }
    }

    /// A copy of a `HeaderMap`'s fields (hyper's requests), in its order.
    pub fn from_header_map(map: &HeaderMap) -> Fields {
        let size: usize = map.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        let mut buf = BytesMut::with_capacity(size);
        let mut b = Builder::new();
        for (name, value) in map {
            let n = buf.len();
            buf.extend_from_slice(name.as_str().as_bytes());
            let v = buf.len();
            buf.extend_from_slice(value.as_bytes());
            b.push(name.as_str().as_bytes(), (n, v), (v, buf.len()));
        }
        // `HeaderName`s are lower case already.
        Fields {
            buf: buf.freeze(),
            spans: b.spans,
            present: b.present,
        }
    }

    fn name(&self, s: &Span) -> &[u8] {
        &self.buf[s.name.0 as usize..s.name.1 as usize]
    }

    fn value(&self, s: &Span) -> &[u8] {
        &self.buf[s.value.0 as usize..s.value.1 as usize]
    }

    /// Every field as (lower-case name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|s| (self.name(s), self.value(s)))
    }

    /// The values of the fields called `name` (lower case), in order.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
        let name = name.as_bytes();
        let spans = match self.present & name_bit(name) {
            0 => &[][..],
            _ => &self.spans[..],
        };
        spans.iter().filter_map(move |s| {
            let len = (s.name.1 - s.name.0) as usize;
            (len == name.len() && self.name(s) == name).then(|| self.value(s))
        })
    }

    /// The first value of `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// [`Fields::get`] as text, if it is visible ASCII (as
    /// `HeaderValue::to_str` has it).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(text)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// More than one field called `name`.
    pub fn repeated(&self, name: &str) -> bool {
        self.get_all(name).nth(1).is_some()
    }

    /// Bytes `from..to` of the head the fields were read from (the lean
    /// loop's request target), shared, no copy.
    pub fn head_slice(&self, from: usize, to: usize) -> Bytes {
        self.buf.slice(from..to)
    }

    /// `value` (a slice of these fields) as shared bytes, no copy.
    pub fn shared(&self, value: &[u8]) -> Bytes {
        if value.is_empty() {
            return Bytes::new();
        }
        self.buf.slice_ref(value)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// A field value as text, if every byte is visible ASCII, space or tab
/// (what `HeaderValue::to_str` accepts).
pub fn text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn names_are_lowered_as_make_ascii_lowercase_would() {
        // Every byte value, at every position of names of 1 to 24 bytes.
        for len in 1..=24usize {
            for b in 0..=255u8 {
                for at in 0..len {
                    let mut name: Vec<u8> = (0..len).map(|i| b"Xy-Z@[`{"[i % 8]).collect();
                    name[at] = b;
                    let mut expect = name.clone();
                    expect.make_ascii_lowercase();
                    lower_in_place(&mut name);
                    assert_eq!(name, expect, "len {len}, byte {b:#x} at {at}");
                }
            }
        }
        let mut empty: [u8; 0] = [];
        lower_in_place(&mut empty);
    }

    fn lean(head: &str, fields: &[(&str, &str)]) -> Fields {
        let buf = BytesMut::from(head.as_bytes());
        let mut b = Builder::new();
        for (n, v) in fields {
            let at = head.find(&format!("{n}: {v}")).expect("field in head");
            let vat = at + n.len() + 2;
            b.push(n.as_bytes(), (at, at + n.len()), (vat, vat + v.len()));
        }
        b.finish(buf)
    }

    #[test]
    fn names_are_lower_cased_and_lookups_find_every_value_in_order() {
        let f = lean(
            "Host: gw\r\nX-A: 1\r\nAuthorization: Bearer t\r\nx-a: 2\r\n",
            &[
                ("Host", "gw"),
                ("X-A", "1"),
                ("Authorization", "Bearer t"),
                ("x-a", "2"),
            ],
        );
        assert_eq!(f.len(), 4);
        assert_eq!(f.get("host"), Some(&b"gw"[..]));
        assert_eq!(f.get_str("authorization"), Some("Bearer t"));
        assert_eq!(f.get_all("x-a").collect::<Vec<_>>(), [b"1", b"2"]);
        assert!(f.repeated("x-a"));
        assert!(!f.repeated("host"));
        assert!(!f.contains("origin"));
        let names: Vec<&[u8]> = f.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"host"[..], b"x-a", b"authorization", b"x-a"]);
        assert_eq!(&f.shared(f.get("host").unwrap())[..], b"gw");
    }

    #[test]
    fn a_name_is_found_whatever_its_case_and_absent_names_are_not() {
        let names = [
            "Host",
            "ORIGIN",
            "x-Forwarded-For",
            "X-Request-ID",
            "Cookie",
            "Content-Length",
            "X-Clawgate-Token",
            "~odd!name",
            "1-digit",
        ];
        let head: String = names.iter().map(|n| format!("{n}: v\r\n")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v")).collect();
        let f = lean(&head, &pairs);
        for n in names {
            assert_eq!(f.get(&n.to_ascii_lowercase()), Some(&b"v"[..]), "{n}");
        }
        for absent in [
            "authorization",
            "upgrade",
            "connection",
            "x-forwarded-host",
            "accept",
        ] {
            assert_eq!(f.get(absent), None, "{absent}");
        }
    }

    #[test]
    fn a_header_map_is_copied_in_its_order() {
        let mut m = HeaderMap::new();
        m.append("cookie", HeaderValue::from_static("a=1"));
        m.append("origin", HeaderValue::from_static("https://x"));
        m.append("cookie", HeaderValue::from_static("b=2"));
        let f = Fields::from_header_map(&m);
        assert_eq!(f.len(), 3);
        assert_eq!(f.get_all("cookie").collect::<Vec<_>>(), [b"a=1", b"b=2"]);
        assert_eq!(f.get("origin"), Some(&b"https://x"[..]));
        assert!(Fields::from_header_map(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn text_is_what_header_value_to_str_accepts() {
        for v in [&b"plain"[..], b"tab\there", b"caf\xc3\xa9", b"\x7f", b""] {
            let ours = text(v).is_some();
            let http = HeaderValue::from_bytes(v).is_ok_and(|h| h.to_str().is_ok());
            assert_eq!(ours, http, "{v:?}");
        }
    }
}
