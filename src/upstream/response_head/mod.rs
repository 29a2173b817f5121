//! The gateway's response head (RFC 9112): `httparse` into the status,
//! the body's framing (§6.3) and [`HeadFields`]: the header lines the
//! client gets, already filtered, copied once. The lean HTTP/1.1 loop
//! writes them as they are; hyper's side builds a `HeaderMap` from them
//! only when it serves the client (h2, upgrades).

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode, Version};

use crate::message::HeadFields;
use clawgate_policy::session::COOKIE_NAME as SESSION_COOKIE;
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
mod tests;
