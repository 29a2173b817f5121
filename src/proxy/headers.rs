//! Header hygiene between the client and the gateway.
//!
//! The gateway trusts `x-forwarded-user` and `x-openclaw-scopes` because
//! only clawgate may set them: every inbound copy is removed, whoever sent
//! it. Forwarding headers from untrusted peers are dropped and rewritten;
//! credentials meant for clawgate never travel upstream.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Version;

use super::upstream::wire;
use super::{ClientRequest, Refusal};
use crate::config::Upstream;
use crate::message::fields::{text, Fields};
use crate::request_id::RequestId;
use clawgate_policy::identity::Via;
use clawgate_policy::member::Member;

pub use crate::request_id::X_REQUEST_ID;

/// Who is calling, as authorized: what identity the upstream is told about.
pub enum Caller<'a> {
    Member {
        member: &'a Member,
        via: &'a Via,
    },
    /// A `[[public]]` route: no identity; the caller's own credentials pass.
    Public {
        prefix: &'a str,
    },
}

impl Caller<'_> {
    /// The member's name, for a member's request.
    pub fn member_name(&self) -> Option<&str> {
        match self {
            Caller::Member { member, .. } => Some(member.name.as_str()),
            Caller::Public { .. } => None,
        }
    }
}

/// Everything the outgoing request says about its origin.
pub struct Forwarding<'a> {
    pub client_ip: HeaderValue,
    pub proto: HeaderValue,
    pub host: Option<&'a [u8]>,
    pub request_id: &'a RequestId,
    pub peer_trusted: bool,
    /// `Some(value of Upgrade)` when the connection is being upgraded.
    pub upgrade: Option<&'a [u8]>,
    /// The `Sec-WebSocket-Key` clawgate makes for a WebSocket opened over
    /// h2 (RFC 8441 has none), with `Sec-WebSocket-Version` if the client
    /// left it out.
    pub websocket_key: Option<&'a [u8]>,
    pub session_cookie: &'a str,
}

/// Does this HTTP/1.1 request ask to switch protocols? The `Upgrade` value.
pub fn upgrade_requested(fields: &Fields) -> Option<&[u8]> {
    let upgrade = fields.get("upgrade")?;
    let wants = fields
        .get_all("connection")
        .filter_map(text)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    wants.then_some(upgrade)
}

/// Is this a hop-by-hop header (RFC 9110 §7.6.1) or one only clawgate may
/// set? Decided from the (lower-case) name alone, without hashing.
fn never_forwarded(name: &[u8], identity_header: &HeaderName) -> bool {
    wire::is_hop_by_hop(name)
        || matches!(
            name,
            b"proxy-authorization"
                | b"x-openclaw-scopes"
                | b"x-real-ip"
                | b"forwarded"
                | b"x-request-id"
        )
        || name.starts_with(b"x-forwarded-")
        || name.starts_with(b"x-clawgate-")
        || name == identity_header.as_str().as_bytes()
}

/// Names listed in `Connection` (hop-by-hop by declaration), as sent.
fn connection_listed<'f>(fields: &'f Fields, doomed: &mut Vec<&'f [u8]>) {
    for v in fields.get_all("connection").filter_map(text) {
        for t in v.split(',') {
            let t = t.trim();
            // The usual values name nothing beyond the hop-by-hop set.
            if t.is_empty()
                || t.eq_ignore_ascii_case("keep-alive")
                || t.eq_ignore_ascii_case("close")
                || t.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            doomed.push(t.as_bytes());
        }
    }
}

/// Write the request head for the upstream into `out`, straight from the
/// client's headers: one pass decides what goes, then clawgate's own are
/// added. Nothing is removed from or inserted into a map, which is where
/// the cost of header rewriting lies. `chunked`: the body goes out with
/// chunked transfer coding (its length is unknown).
#[allow(clippy::too_many_arguments)]
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &http::Method,
    target: &str,
    fields: &Fields,
    up: &Upstream,
    caller: &Caller<'_>,
    f: &Forwarding<'_>,
    chunked: bool,
) {
    let member = matches!(caller, Caller::Member { .. });
    let mut listed: Vec<&[u8]> = Vec::new();
    if fields.contains("connection") {
        connection_listed(fields, &mut listed);
    }
    wire::request_line(out, method, target);
    let mut cookies_written = false;
    for (n, value) in fields.iter() {
        if never_forwarded(n, &up.identity_header)
            || n == b"host"
            || (member && n == b"authorization")
            || listed.iter().any(|l| l.eq_ignore_ascii_case(n))
        {
            continue;
        }
        // An h2 client has no key of its own to send (RFC 8441 §5).
        if f.websocket_key.is_some() && n == b"sec-websocket-key" {
            continue;
        }
        // A trusted proxy in front already knows the original scheme and host.
        if f.peer_trusted && (n == b"x-forwarded-proto" || n == b"x-forwarded-host") {
            continue;
        }
        if n == b"cookie" {
            if !cookies_written {
                cookies_written = true;
                if let Some(v) = super::cookie::upstream_line(fields, f.session_cookie) {
                    wire::header(out, b"cookie", v.as_bytes());
                }
            }
            continue;
        }
        wire::header(out, n, value);
    }

    if let Caller::Member { member: m, .. } = caller {
        wire::header(
            out,
            up.identity_header.as_str().as_bytes(),
            m.name_header.as_bytes(),
        );
        wire::header(out, b"x-openclaw-scopes", m.scopes_header.as_bytes());
    }
    wire::header(out, b"host", up.host_header.as_bytes());
    wire::header(out, b"x-forwarded-for", f.client_ip.as_bytes());
    let trusted = |name: &str| f.peer_trusted.then(|| fields.get(name)).flatten();
    let proto = trusted("x-forwarded-proto").unwrap_or(f.proto.as_bytes());
    wire::header(out, b"x-forwarded-proto", proto);
    if let Some(h) = trusted("x-forwarded-host").or(f.host) {
        wire::header(out, b"x-forwarded-host", h);
    }
    wire::header(out, b"x-request-id", f.request_id.as_bytes());
    if let Some(u) = f.upgrade {
        wire::header(out, b"connection", b"upgrade");
        wire::header(out, b"upgrade", u);
        if let Some(key) = f.websocket_key {
            wire::header(out, b"sec-websocket-key", key);
            if !fields.contains("sec-websocket-version") {
                wire::header(out, b"sec-websocket-version", b"13");
            }
        }
    }
    if chunked {
        wire::header(out, b"transfer-encoding", b"chunked");
    }
    wire::end_head(out);
}

/// The host the client addressed: HTTP/1 `Host` (exactly one), or the h2
/// `:authority`. Returned for `X-Forwarded-Host`.
pub(super) fn request_host(req: &ClientRequest) -> Result<Option<Bytes>, Refusal> {
    let mut hosts = req.fields.get_all("host");
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::BadRequest("duplicate_host"));
    }
    let host = match req.version {
        Version::HTTP_2 | Version::HTTP_3 => {
            let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
            if let (Some(h), Some(a)) = (first, authority) {
                if !h.eq_ignore_ascii_case(a) {
                    return Err(Refusal::BadRequest("host_authority_mismatch"));
                }
            }
            match authority {
                Some(a) => Some(Bytes::copy_from_slice(a)),
                None => first.map(|h| req.fields.shared(h)),
            }
        }
        Version::HTTP_11 if first.is_none() => return Err(Refusal::BadRequest("missing_host")),
        _ => first.map(|h| req.fields.shared(h)),
    };
    match host {
        Some(h) if !valid_host(&h) => Err(Refusal::BadRequest("bad_host")),
        other => Ok(other),
    }
}

/// `host[:port]` (RFC 9110 §7.2): no userinfo, path or spaces, since it
/// travels on as `X-Forwarded-Host`.
fn valid_host(v: &[u8]) -> bool {
    /// A registered name's bytes: unreserved, sub-delims and `%`.
    const REG_NAME: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = (i as u8).is_ascii_alphanumeric();
            i += 1;
        }
        let extra = b"-._~%!$&'()*+,;=";
        let mut j = 0;
        while j < extra.len() {
            t[extra[j] as usize] = true;
            j += 1;
        }
        t
    };
    let (host, port) = match v.iter().rposition(|b| *b == b':') {
        Some(i) if !v[i..].contains(&b']') => (&v[..i], Some(&v[i + 1..])),
        _ => (v, None),
    };
    let host_ok = match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        Some(ip) => {
            !ip.is_empty()
                && ip
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        }
        None => !host.is_empty() && host.iter().all(|&b| REG_NAME[usize::from(b)]),
    };
    host_ok && port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests;
