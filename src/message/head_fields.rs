//! A response's header fields prewritten as lines, carried with its body:
//! the gateway's (parsed and filtered by `upstream::response_head`) or the fixed
//! ones of clawgate's own JSON answers (`deny`, `local_body`). The lean
//! HTTP/1.1 loop writes them as they are; hyper's side (h2, upgrades)
//! builds a `HeaderMap` from them.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::request_id::{RequestId, X_REQUEST_ID};

/// Header fields laid out as the client gets them, `name: value\r\n`
/// lines, so the HTTP/1.1 loop writes them as they are and no `HeaderMap`
/// is built for them (hyper's side builds one with [`Self::append_to`]).
///
/// For a gateway response: the gateway's fields in its order and
/// spelling, without hop-by-hop fields (and those its `Connection` names),
/// without `Content-Length` under a transfer coding, without the gateway's
/// own `X-Request-Id`; a 101 keeps `Upgrade` and gets
/// `connection: upgrade`; a response to `HEAD` keeps `Transfer-Encoding`
/// (it frames no body here, and says how a `GET`'s would come). For
/// clawgate's own JSON answers: the fixed fields every one carries (see
/// `deny`).
#[derive(Debug, Clone, Default)]
pub struct HeadFields {
    pub lines: Bytes,
    /// This proxy's request ID, written after the lines. It rides here
    /// rather than in the response's `HeaderMap`, which would otherwise be
    /// allocated for this one field on every proxied response.
    pub request_id: Option<RequestId>,
    pub has_date: bool,
    /// `Content-Type: text/event-stream`.
    pub event_stream: bool,
    /// The `Content-Length` passed on.
    pub content_length: Option<u64>,
}

impl HeadFields {
    /// The lines as `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        pairs(&self.lines)
    }

    /// Put `name: value` before the lines: a refusal's own field (a 429's
    /// `retry-after`), so a client hammering with bad tokens costs no
    /// `HeaderMap` either. `value` must be a valid field value.
    pub fn prepend(&mut self, name: &str, value: &[u8]) {
        let mut v = Vec::with_capacity(name.len() + value.len() + 4 + self.lines.len());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(b": ");
        v.extend_from_slice(value);
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&self.lines);
        // Exactly full, so `Bytes` takes the allocation as it is.
        self.lines = v.into();
    }

    /// Keep only the lines whose name `keep` accepts (rare: a 101 turned
    /// into an h2 200), so it may allocate.
    pub fn retain(&mut self, keep: impl Fn(&[u8]) -> bool) {
        let mut v = Vec::with_capacity(self.lines.len());
        for (name, value) in self.iter().filter(|(n, _)| keep(n)) {
            v.extend_from_slice(name);
            v.extend_from_slice(b": ");
            v.extend_from_slice(value);
            v.extend_from_slice(b"\r\n");
        }
        self.lines = v.into();
    }

    /// Write them, and the request ID, into a response head being laid out.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lines);
        if let Some(id) = &self.request_id {
            out.extend_from_slice(X_REQUEST_ID.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Append them to `map` (for hyper, which takes a `HeaderMap`). The
    /// lines passed httparse, so no field is refused in practice; one that
    /// `http` would not take is dropped rather than failing the response.
    ///
    /// The values share one copy of the lines, not the lines themselves:
    /// a gateway's lines are a piece of their thread's arena
    /// (`upstream::response_head`), which a `HeaderMap` kept for a long response
    /// would hold whole.
    pub fn append_to(&self, map: &mut HeaderMap) {
        map.reserve(self.lines.len() / 24);
        let lines = Bytes::copy_from_slice(&self.lines);
        for (name, value) in pairs(&lines) {
            let name = HeaderName::from_bytes(name);
            let value = HeaderValue::from_maybe_shared(lines.slice_ref(value));
            if let (Ok(n), Ok(v)) = (name, value) {
                map.append(n, v);
            }
        }
        if let Some(id) = &self.request_id {
            map.insert(X_REQUEST_ID, id.to_header_value());
        }
    }
}

/// `name: value\r\n` lines as `(name, value)` pairs.
fn pairs(lines: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    lines
        .split(|&b| b == b'\n')
        .filter_map(|l| l.strip_suffix(b"\r"))
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            Some((
                &l[..colon],
                l[colon + 1..].strip_prefix(b" ").unwrap_or(&l[colon + 1..]),
            ))
        })
}
