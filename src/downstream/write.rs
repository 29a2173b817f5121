//! Writing a response for the lean loop: the head straight from the
//! `Response` into the connection's output buffer, then the body as it
//! comes (with its length, or chunked), in as few writes as it arrives.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::StatusCode;

use crate::message::HeadFields;

/// How the body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304, or an empty one.
    None,
    /// As many bytes as the `Content-Length` says.
    Length,
    /// `Transfer-Encoding: chunked` (an event stream, say).
    Chunked,
    /// Until the connection closes: a body of unknown length to an
    /// HTTP/1.0 client, which knows no chunked coding.
    Close,
}

/// What the head writer needs to know about the body.
pub struct BodyInfo {
    pub head_request: bool,
    pub ended: bool,
    /// The body's exact length; for a `HEAD`, that of the `GET` it
    /// stands for if known (`None` for the gateway's: its lines say).
    pub exact: Option<u64>,
    /// The request was HTTP/1.0: no chunked coding, and a connection kept
    /// open says so (`connection: keep-alive`).
    pub http10: bool,
}

/// Write the head; returns the framing and whether the connection must
/// close after it. `close` adds `Connection: close`. The status line says
/// `HTTP/1.1` to HTTP/1.0 clients too (RFC 9110 §6.2).
pub fn head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    fields: Option<&HeadFields>,
    body: &BodyInfo,
    close: bool,
) -> (Framing, bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let (mut has_length, mut has_date, mut asked_close) = (false, false, false);
    for (name, value) in headers {
        if name == header::TRANSFER_ENCODING {
            continue; // the framing is chosen here
        }
        has_length |= name == header::CONTENT_LENGTH;
        has_date |= name == header::DATE;
        if name == header::CONNECTION {
            asked_close |= value.as_bytes().eq_ignore_ascii_case(b"close");
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(f) = fields {
        f.write_to(out);
        has_length |= f.content_length.is_some();
        has_date |= f.has_date;
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    let bodyless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodyless {
        Framing::None
    } else if has_length {
        if body.head_request {
            Framing::None
        } else {
            Framing::Length
        }
    } else if body.head_request {
        // The length a GET would get, when known (clawgate's own answers);
        // the gateway's HEAD framing is in its lines, never made up here.
        if let Some(n) = body.exact {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(n, &mut [0; 20]));
            out.extend_from_slice(b"\r\n");
        }
        Framing::None
    } else if body.ended || body.exact.is_some() {
        let n = body.exact.unwrap_or(0);
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa(n, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
        if n == 0 {
            Framing::None
        } else {
            Framing::Length
        }
    } else if body.http10 {
        Framing::Close
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    let close = close || framing == Framing::Close;
    if close && !asked_close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if body.http10 && !close && !asked_close {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, close || asked_close)
}

/// One chunk of a chunked body (never empty: that would end the body).
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(!data.is_empty());
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 || i == hex.len() {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The IMF-fixdate of now, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(c.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn info(head_request: bool, ended: bool, exact: Option<u64>) -> BodyInfo {
        BodyInfo {
            head_request,
            ended,
            exact,
            http10: false,
        }
    }

    #[test]
    fn an_http_1_0_client_gets_http_1_1_no_chunks_and_its_keep_alive() {
        let h = HeaderMap::new();
        let ten = |i: BodyInfo, close| {
            let mut out = Vec::new();
            let i = BodyInfo { http10: true, ..i };
            let (f, c) = head(&mut out, StatusCode::OK, &h, None, &i, close);
            (f, c, text(&out))
        };
        let (f, c, s) = ten(info(false, false, None), false);
        assert_eq!(
            (f, c),
            (Framing::Close, true),
            "unknown length: until close"
        );
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(!s.contains("transfer-encoding") && s.contains("connection: close\r\n"));
        let (f, c, s) = ten(info(false, false, Some(3)), false);
        assert_eq!((f, c), (Framing::Length, false));
        assert!(s.contains("connection: keep-alive\r\n"), "{s}");
        let (_, c, s) = ten(info(false, false, Some(3)), true);
        assert!(c && s.contains("connection: close\r\n") && !s.contains("keep-alive"));
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn a_head_with_length_date_and_close() {
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("5"));
        h.insert("x-request-id", HeaderValue::from_static("r1"));
        let mut out = Vec::new();
        let (f, close) = head(
            &mut out,
            StatusCode::OK,
            &h,
            None,
            &info(false, false, None),
            true,
        );
        let s = text(&out);
        assert_eq!(f, Framing::Length);
        assert!(close);
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(
            s.contains("content-length: 5\r\nx-request-id: r1\r\ndate: "),
            "{s}"
        );
        assert!(s.ends_with(" GMT\r\nconnection: close\r\n\r\n"), "{s}");
    }

    #[test]
    fn framing_follows_the_body() {
        let h = HeaderMap::new();
        let frame = |status, i: BodyInfo| {
            let mut out = Vec::new();
            let f = head(&mut out, status, &h, None, &i, false).0;
            (f, text(&out))
        };
        let (f, s) = frame(StatusCode::OK, info(false, false, None));
        assert_eq!(f, Framing::Chunked);
        assert!(s.contains("transfer-encoding: chunked\r\n"));
        let (f, s) = frame(StatusCode::FORBIDDEN, info(false, false, Some(12)));
        assert_eq!(f, Framing::Length);
        assert!(s.contains("content-length: 12\r\n"));
        let (f, s) = frame(StatusCode::OK, info(false, true, None));
        assert_eq!(f, Framing::None);
        assert!(s.contains("content-length: 0\r\n"));
        let (f, s) = frame(StatusCode::OK, info(true, false, Some(7)));
        assert_eq!(f, Framing::None, "HEAD: length announced, no body");
        assert!(s.contains("content-length: 7\r\n"));
        let (f, s) = frame(StatusCode::OK, info(true, true, None));
        assert_eq!(f, Framing::None, "HEAD of unknown length");
        assert!(!s.contains("content-length") && !s.contains("transfer-encoding"));
        let (f, _) = frame(StatusCode::NOT_MODIFIED, info(false, false, None));
        assert_eq!(f, Framing::None);
    }

    #[test]
    fn a_response_asking_to_close_is_honoured_once() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close"));
        let mut out = Vec::new();
        let (_, close) = head(
            &mut out,
            StatusCode::REQUEST_TIMEOUT,
            &h,
            None,
            &info(false, true, None),
            true,
        );
        assert!(close);
        assert_eq!(text(&out).matches("connection: close").count(), 1);
    }

    #[test]
    fn the_gateway_lines_go_out_as_they_are_with_its_length_and_date() {
        let mut h = HeaderMap::new();
        h.insert("x-clawgate", HeaderValue::from_static("1"));
        let g = HeadFields {
            lines: bytes::Bytes::from_static(
                b"Content-Length: 2\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\nX-Up: 1\r\n",
            ),
            request_id: Some(crate::request_id::RequestId::from_static("r1")),
            has_date: true,
            event_stream: false,
            content_length: Some(2),
        };
        let mut out = Vec::new();
        let (f, _) = head(
            &mut out,
            StatusCode::OK,
            &h,
            Some(&g),
            &info(false, false, Some(2)),
            false,
        );
        let s = text(&out);
        assert_eq!(f, Framing::Length);
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nx-clawgate: 1\r\nContent-Length: 2\r\n\
             Date: Tue, 24 Nov 2026 10:00:00 GMT\r\nX-Up: 1\r\nx-request-id: r1\r\n\r\n"
        );
    }

    #[test]
    fn chunks_are_hex_sized() {
        let mut out = Vec::new();
        chunk(&mut out, &[b'x'; 26]);
        assert_eq!(text(&out), format!("1a\r\n{}\r\n", "x".repeat(26)));
        out.clear();
        chunk(&mut out, b"a");
        assert_eq!(text(&out), "1\r\na\r\n");
    }
}
