//! The gateway's response head (RFC 9112): `httparse` into the status,
//! the body's framing (§6.3) and [`HeadFields`]: the header lines the
//! client gets, already filtered, copied once. The lean HTTP/1.1 loop
//! writes them as they are; hyper's side builds a `HeaderMap` from them
//! only when it serves the client (h2, upgrades).

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode, Version};

use crate::proxy::{HeadFields, SESSION_COOKIE};
use field::{connection_tokens, last_token_is, listed, parse_length, sets_cookie, Kind};

mod field;

/// What a 101 gets in place of the gateway's `Connection`.
const UPGRADE_LINE: &[u8] = b"connection: upgrade\r\n";

/// Most header lines accepted in a response head (hyper's default).
const MAX_HEADERS: usize = 100;
// `parse_response` keeps a bit per line in a `u128`.
const _: () = assert!(MAX_HEADERS <= 128);
/// Largest response head accepted; past it the response is refused.
pub const MAX_HEAD_BYTES: usize = u16::MAX as usize;
/// The size of a thread's [`LINES_ARENA`]: room for dozens of heads.
const ARENA_BYTES: usize = 16 * 1024;

thread_local! {
    /// Where a response's lines are copied to, each head's split off as
    /// a `Bytes` of its own: that is a reference count on the arena,
    /// where a buffer per head was the allow path's one allocation. Once
    /// the arena is used up, `reserve` takes it back whole if no head
    /// still holds a piece (the usual case: a head is written to the
    /// client, and dropped, before the next one is parsed), and starts a
    /// new one of [`ARENA_BYTES`] otherwise. A holder that keeps its
    /// piece for long keeps the whole arena it came from, so the
    /// response writers drop theirs once the head is written.
    static LINES_ARENA: std::cell::RefCell<BytesMut> =
        std::cell::RefCell::new(BytesMut::with_capacity(ARENA_BYTES));
}

/// Why a response head was refused. All of them are the gateway's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x, or a malformed line.
    Malformed,
    /// More than [`MAX_HEADERS`] lines or [`MAX_HEAD_BYTES`] bytes.
    TooLarge,
    /// Conflicting or unparsable `Content-Length`.
    BadLength,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the gateway closes the connection (no length given).
    UntilClose,
    /// 101: the connection now carries another protocol.
    Upgrade,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub fields: HeadFields,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parse one response head from the front of `buf`, consuming it.
/// `Ok(None)`: incomplete, read more. Interim (1xx other than 101)
/// responses come back like any other; the caller skips them.
pub fn parse_response(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, HeadError> {
    // The first look is before the first read: nothing to parse, so
    // httparse is not asked.
    if buf.is_empty() {
        return Ok(None);
    }
    // Left uninitialised (safely): httparse fills the slots it uses.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let code = parsed.code.ok_or(HeadError::Malformed)?;
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed)?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;

    // First the facts that decide framing and what is dropped...
    let headers = &*parsed.headers;
    let mut kinds = [Kind::Other; MAX_HEADERS];
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_coded = false;
    let mut close = version == Version::HTTP_10;
    let mut lists_others = false;
    for (h, kind) in headers.iter().zip(kinds.iter_mut()) {
        *kind = Kind::of(h.name.as_bytes());
        let raw = h.value;
        match *kind {
            Kind::ContentLength => {
                let n = parse_length(raw).ok_or(HeadError::BadLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::BadLength);
                }
                length = Some(n);
            }
            Kind::TransferEncoding => {
                transfer_coded = true;
                // Only a final `chunked` delimits the body (§6.3 items 4 and 5).
                chunked = last_token_is(raw, b"chunked");
            }
            Kind::Connection => {
                let (has_close, has_keep_alive, only_plain) = connection_tokens(raw);
                close |= has_close;
                if has_keep_alive && version == Version::HTTP_10 {
                    close = false;
                }
                lists_others |= !only_plain;
            }
            _ => {}
        }
    }
    // ...then the lines the client gets.
    let mut fields = HeadFields {
        content_length: length.filter(|_| !transfer_coded),
        ..HeadFields::default()
    };
    let head_request = request_method == Method::HEAD;
    let passed = |h: &httparse::Header<'_>, kind: Kind| {
        let hop = if switching && kind == Kind::Upgrade {
            false // a 101 names its protocol
        } else if head_request && kind == Kind::TransferEncoding {
            // A HEAD response has no body to frame: its Transfer-Encoding
            // says how a GET's would come, and the client gets it as sent.
            false
        } else {
            kind.is_hop_by_hop()
            // Transfer-Encoding overrides Content-Length (§6.3 item 3): the
            // length must not reach the client.
            || (transfer_coded && kind == Kind::ContentLength)
        };
        // The request ID the client gets is this proxy's (the gateway
        // may echo the one it was sent: it would appear twice). So is the
        // session cookie: one set by the gateway (for a narrower path,
        // say) would shadow the proxy's and log the browser in as
        // whoever the gateway chose.
        let ours = kind == Kind::RequestId
            || (kind == Kind::SetCookie && sets_cookie(h.value, SESSION_COOKIE.as_bytes()));
        !(hop || ours || (lists_others && !switching && listed(headers, h.name.as_bytes())))
    };
    // Each line is judged once; a bit per line remembers the verdict for
    // the copy. The copy goes into this thread's arena (see
    // [`LINES_ARENA`]), not a buffer of its own.
    let mut keep: u128 = 0;
    let mut size = if switching { UPGRADE_LINE.len() } else { 0 };
    for (i, (h, kind)) in headers.iter().zip(kinds).enumerate() {
        if passed(h, kind) {
            keep |= 1 << i;
            size += h.name.len() + h.value.len() + 4;
        }
    }
    fields.lines = LINES_ARENA.with_borrow_mut(|lines| {
        lines.reserve(size);
        for (i, (h, kind)) in headers.iter().zip(kinds).enumerate() {
            if keep & (1 << i) == 0 {
                continue;
            }
            let (name, raw) = (h.name.as_bytes(), h.value);
            match kind {
                Kind::Date => fields.has_date = true,
                Kind::ContentType => fields.event_stream = raw.starts_with(b"text/event-stream"),
                _ => {}
            }
            lines.extend_from_slice(name);
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(raw);
            lines.extend_from_slice(b"\r\n");
        }
        if switching {
            lines.extend_from_slice(UPGRADE_LINE);
        }
        lines.split().freeze()
    });
    buf.advance(len);

    let framing = if switching {
        Framing::Upgrade
    } else if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || request_method == Method::HEAD
    {
        Framing::Empty
    } else if transfer_coded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let keep_alive = !close && !matches!(framing, Framing::UntilClose | Framing::Upgrade);
    Ok(Some(ResponseHead {
        status,
        fields,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn parse(raw: &str, method: Method) -> Result<Option<ResponseHead>, HeadError> {
        let mut buf = BytesMut::from(raw);
        parse_response(&mut buf, &method)
    }

    #[test]
    fn a_length_delimited_response_leaves_its_body_in_the_buffer() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-Seen: a\r\n\r\nok",
        );
        let head = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"ok");
        assert_eq!(
            &head.fields.lines[..],
            b"Content-Length: 2\r\nX-Seen: a\r\n",
            "a plain keep-alive is this hop's"
        );
        assert_eq!(head.fields.content_length, Some(2));
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let f = |raw: &str, m: Method| parse(raw, m).unwrap().unwrap().framing;
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD),
            Framing::Empty
        );
        assert_eq!(f("HTTP/1.1 204 No\r\n\r\n", Method::GET), Framing::Empty);
        assert_eq!(f("HTTP/1.1 304 NM\r\n\r\n", Method::GET), Framing::Empty);
        assert_eq!(
            f("HTTP/1.1 100 Continue\r\n\r\n", Method::GET),
            Framing::Empty
        );
        assert_eq!(
            f("HTTP/1.1 101 SP\r\nupgrade: websocket\r\n\r\n", Method::GET),
            Framing::Upgrade
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\n\r\n", Method::GET),
            Framing::UntilClose
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                Method::GET
            ),
            Framing::Chunked
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                Method::GET
            ),
            Framing::UntilClose
        );
        let h = parse(
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.fields.lines.is_empty(), "no length, no transfer coding");
        assert_eq!(h.fields.content_length, None);
        // To a HEAD, the framing a GET would get is passed on as it is.
        let h = parse(
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(&h.fields.lines[..], b"Transfer-Encoding: chunked\r\n");
        assert_eq!(h.fields.content_length, None);
    }

    #[test]
    fn keep_alive_is_decided_by_version_and_connection() {
        let ka = |raw: &str| parse(raw, Method::GET).unwrap().unwrap().keep_alive;
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(ka(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.1 200 OK\r\n\r\n"), "read-until-close");
        let h = parse(
            "HTTP/1.1 200 OK\r\nconnection: x-hop\r\nx-hop: 1\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &h.fields.lines[..],
            b"content-length: 0\r\n",
            "Connection and the field it names are this hop's"
        );
    }

    #[test]
    fn hop_by_hop_fields_stay_and_a_101_keeps_its_upgrade() {
        let h = parse(
            "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x\r\n\
             Proxy-Connection: x\r\nUpgrade: h2c\r\nContent-Type: text/event-stream\r\n\
             Date: Tue, 24 Nov 2026 10:00:00 GMT\r\ntransfer-encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &h.fields.lines[..],
            &b"Content-Type: text/event-stream\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n"[..]
        );
        assert!(h.fields.event_stream && h.fields.has_date);
        let h = parse(
            "HTTP/1.1 101 SP\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: k\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &h.fields.lines[..],
            &b"Upgrade: websocket\r\nSec-WebSocket-Accept: k\r\nconnection: upgrade\r\n"[..]
        );
        let mut map = HeaderMap::new();
        h.fields.append_to(&mut map);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["sec-websocket-accept"], "k");
        assert_eq!(map["connection"], "upgrade");
    }

    #[test]
    fn the_gateways_request_id_gives_way_to_ours() {
        let mut h = parse(
            "HTTP/1.1 200 OK\r\nX-Request-Id: theirs\r\nX-Up: 1\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &h.fields.lines[..],
            &b"X-Up: 1\r\ncontent-length: 0\r\n"[..]
        );
        h.fields.request_id = Some(crate::request_id::RequestId::from_static("ours"));
        let mut map = HeaderMap::new();
        h.fields.append_to(&mut map);
        let ids: Vec<_> = map.get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["ours"]);
    }

    #[test]
    fn the_gateways_session_cookie_is_dropped_and_others_pass() {
        let h = parse(
            "HTTP/1.1 200 OK\r\nSet-Cookie: theme=dark\r\n\
             set-cookie: clawgate_session=forged; Path=/chat\r\n\
             Set-Cookie: lang=en; Path=/\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &h.fields.lines[..],
            &b"Set-Cookie: theme=dark\r\nSet-Cookie: lang=en; Path=/\r\ncontent-length: 0\r\n"[..]
        );
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(parse("HTTP/1.1 200 OK\r\n", Method::GET).unwrap().is_none());
        assert_eq!(
            parse(
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                Method::GET
            )
            .unwrap_err(),
            HeadError::BadLength
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", Method::GET).unwrap_err(),
            HeadError::BadLength
        );
        assert!(parse(
            "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n",
            Method::GET
        )
        .unwrap()
        .is_some());
        assert_eq!(
            parse("SSH-2.0-OpenSSH\r\n\r\n", Method::GET).unwrap_err(),
            HeadError::Malformed
        );
        let many: String = (0..150).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), Method::GET).unwrap_err(),
            HeadError::TooLarge
        );
        let huge = "HTTP/1.1 200 OK\r\nx-big: ".to_string() + &"a".repeat(MAX_HEAD_BYTES + 1);
        assert_eq!(parse(&huge, Method::GET).unwrap_err(), HeadError::TooLarge);
    }
}
