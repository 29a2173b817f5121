//! Reading a request head for the lean loop: httparse over the connection's
//! buffer, then a [`ClientRequest`] whose fields are slices of the bytes
//! read (`proxy::fields`). Only plain requests are taken: HTTP/1.1 or
//! 1.0, no body, no upgrade, no `Expect`; anything else is handed to
//! hyper whole. HTTP/1.0 is read here because hyper would answer it with
//! an `HTTP/1.0` status line, where RFC 9110 §6.2 wants the server's own
//! version (as nginx does).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::{Method, StatusCode, Uri, Version};

use crate::message::fields::Builder;
use crate::message::ClientRequest;

/// Headers per request, as hyper is configured (`max_headers`).
pub const MAX_HEADERS: usize = 100;

/// What the buffer holds. Returned once per request and matched at once:
/// boxing the large variant would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Head {
    /// Not a whole head yet: read more.
    Partial,
    /// A plain request, its head taken off the buffer.
    Plain(Plain),
    /// A request the loop leaves to hyper (body, upgrade, `Expect`...):
    /// the buffer is untouched.
    Handover,
    /// Answer with this status and close: 400 (not HTTP) or 431 (head
    /// over `max_header_bytes` or over [`MAX_HEADERS`] fields).
    Malformed(StatusCode),
}

pub struct Plain {
    pub req: ClientRequest,
    /// The connection ends after this answer: the client sent
    /// `Connection: close`, or is HTTP/1.0 and did not ask to keep it.
    pub close: bool,
}

pub fn parse(buf: &mut BytesMut, max_head: usize) -> Head {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Head::Malformed(too_large()),
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Head::Malformed(too_large())
        }
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::Malformed(too_large()),
        Err(_) => return Head::Malformed(StatusCode::BAD_REQUEST),
    };
    // Heads over 64 KiB (max_header_bytes raised) are rare: hyper reads them.
    if len > usize::from(u16::MAX) {
        return Head::Handover;
    }
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Head::Handover,
    };
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Head::Malformed(StatusCode::BAD_REQUEST);
    };
    if method == "CONNECT" {
        return Head::Handover;
    }
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| s.as_ptr() as usize - base;
    let (mut close, mut keep_alive) = (false, false);
    let mut fields = Builder::new();
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        let plain = match name.len() {
            // `Content-Length: 0` is a bodyless request too.
            14 if name.eq_ignore_ascii_case(b"content-length") => h.value.trim_ascii() == b"0",
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => false,
            7 if name.eq_ignore_ascii_case(b"upgrade") => false,
            6 if name.eq_ignore_ascii_case(b"expect") => false,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                let v = h.value.trim_ascii();
                let (c, k) = (
                    v.eq_ignore_ascii_case(b"close"),
                    v.eq_ignore_ascii_case(b"keep-alive"),
                );
                close |= c;
                keep_alive |= k;
                c || k
            }
            _ => true,
        };
        if !plain {
            return Head::Handover;
        }
        let (n, v) = (at(name), at(h.value));
        fields.push(name, (n, n + name.len()), (v, v + h.value.len()));
    }
    let method = Method::from_bytes(method.as_bytes());
    let target = (at(target.as_bytes()), at(target.as_bytes()) + target.len());
    let Ok(method) = method else {
        return Head::Malformed(StatusCode::BAD_REQUEST);
    };
    let fields = fields.finish(buf.split_to(len));
    let Ok(uri) = Uri::from_maybe_shared(fields.head_slice(target.0, target.1)) else {
        return Head::Malformed(StatusCode::BAD_REQUEST);
    };
    // HTTP/1.0 closes unless asked not to (RFC 9112 §9.3).
    close |= version == Version::HTTP_10 && !keep_alive;
    let req = ClientRequest::plain(method, uri, version, fields);
    Head::Plain(Plain { req, close })
}

/// Is the request at the front of `buf` an HTTP/1.0 one? (For a handover
/// to hyper, which answers those with an `HTTP/1.0` status line.)
pub fn is_http10(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    line.trim_ascii_end().ends_with(b" HTTP/1.0")
}

fn too_large() -> StatusCode {
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(s: &str) -> BytesMut {
        BytesMut::from(s.as_bytes())
    }

    fn plain(s: &str) -> (Plain, BytesMut) {
        let mut b = buf(s);
        match parse(&mut b, 8192) {
            Head::Plain(p) => (p, b),
            _ => panic!("not plain: {s:?}"),
        }
    }

    fn kind(s: &str) -> &'static str {
        match parse(&mut buf(s), 64) {
            Head::Partial => "partial",
            Head::Plain(_) => "plain",
            Head::Handover => "handover",
            Head::Malformed(StatusCode::BAD_REQUEST) => "400",
            Head::Malformed(_) => "431",
        }
    }

    #[test]
    fn a_plain_get_becomes_a_request_and_leaves_the_next_one_buffered() {
        let (p, rest) = plain(
            "GET /a?b=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer x\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next",
        );
        assert_eq!(p.req.method, Method::GET);
        assert_eq!(p.req.uri.path_and_query().unwrap().as_str(), "/a?b=1");
        assert_eq!(p.req.fields.get_str("authorization"), Some("Bearer x"));
        assert_eq!(p.req.fields.get_all("x-a").count(), 2);
        assert!(!p.close);
        assert_eq!(&rest[..], b"GET /next");
    }

    #[test]
    fn connection_close_is_noted() {
        let (p, _) = plain("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(p.close);
        let (p, _) = plain("DELETE / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(!p.close);
    }

    #[test]
    fn http_1_0_is_read_here_and_closes_unless_kept_alive() {
        let (p, _) = plain("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(p.req.version, Version::HTTP_10);
        assert!(p.close);
        let (p, _) = plain("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!p.close);
        let (p, _) = plain("GET / HTTP/1.1\r\n\r\n");
        assert_eq!(p.req.version, Version::HTTP_11);
        assert!(!p.close);
    }

    #[test]
    fn bodies_upgrades_and_other_versions_go_to_hyper() {
        assert_eq!(
            kind("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
            "handover"
        );
        assert_eq!(
            kind("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "handover"
        );
        assert_eq!(
            kind("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            "handover"
        );
        assert_eq!(
            kind("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n"),
            "handover"
        );
        assert_eq!(
            kind("PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"),
            "handover"
        );
        assert_eq!(
            kind("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n"),
            "handover"
        );
        assert!(is_http10(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n"));
        assert!(!is_http10(b"POST / HTTP/1.1\r\nX: HTTP/1.0\r\n\r\n"));
        assert_eq!(kind("CONNECT a:1 HTTP/1.1\r\n\r\n"), "handover");
        // h2 is settled at accept (`downstream::Protocol`): here, on a
        // connection that speaks HTTP/1, its preface is no request.
        assert_eq!(kind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "400");
    }

    #[test]
    fn incomplete_oversized_and_garbage_heads() {
        assert_eq!(kind("GET / HTTP/1.1\r\nHost: x"), "partial");
        assert_eq!(
            kind(&format!("GET /{} HTTP/1.1\r\n", "a".repeat(80))),
            "431"
        );
        assert_eq!(kind("\x16\x03\x01 hello\r\n\r\n"), "400");
        assert_eq!(kind("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), "400");
        // Over 64 KiB (max_header_bytes raised): hyper reads it.
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
        assert!(matches!(parse(&mut buf(&big), 1 << 20), Head::Handover));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        match parse(&mut buf(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 1 << 20) {
            Head::Malformed(s) => assert_eq!(s, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            _ => panic!("over MAX_HEADERS fields must be refused"),
        }
    }
}
