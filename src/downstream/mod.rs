//! The HTTP side of a client connection, after TLS ("downstream", as
//! Envoy says; the gateway side is `proxy::upstream`).
//!
//! Plain HTTP/1.1 requests (no body, no upgrade: what CLIs, browsers and
//! health checks send nearly always) are read and answered by a lean loop
//! here: one read buffer, httparse, the response head written straight
//! from the `Response`, head and body in one write when the body is ready.
//! Per request it does a fraction of the work of hyper's server
//! dispatcher. Any other request (a body, a WebSocket upgrade) hands the
//! connection to hyper's HTTP/1.1 server for the rest of its life, bytes
//! already read included ([`hyper_conn`]). An h2 connection, as the
//! accept path settled it ([`Start::protocol`]), is hyper's h2 server's
//! from the start. Plain HTTP/1.0 requests are served here, answered
//! `HTTP/1.1` as RFC 9110 §6.2 asks (hyper would say `HTTP/1.0`).
//!
//! Both answer through the same `proxy::serve`, so what a request gets
//! does not depend on which one read it.

mod head;
mod hyper_conn;
mod protocol;
mod write;

pub use protocol::Protocol;

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::{Method, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::config::Snapshot;
use crate::prefixed::Prefixed;
use crate::proxy::{self, Conn};
use crate::state::State;
use head::Head;
use write::{BodyInfo, Framing};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Read buffer to start with; it grows to `max_header_bytes` for a head.
const READ_BUF: usize = 8 * 1024;
/// A body frame at least this large is written as is, not copied behind
/// the head into the output buffer.
const COPY_BELOW: usize = 16 * 1024;

/// How a connection begins, as the accept path (`net`) found it.
pub struct Start {
    pub protocol: Protocol,
    /// Bytes already read (those that told the protocol), or none.
    pub buf: BytesMut,
    /// When the first request head is due, if the accept path began
    /// waiting for it (for its first bytes).
    pub head_due: Option<Instant>,
}

impl Start {
    /// A fresh read buffer, as a connection starts with.
    pub fn buffer() -> BytesMut {
        BytesMut::with_capacity(READ_BUF)
    }
}

/// Serve the connection's requests until it ends; `stop` asks it to end
/// gracefully (after the request in flight).
pub async fn serve<IO>(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    io: IO,
    conn: Arc<Conn>,
    stop: Arc<AtomicBool>,
    start: Start,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match start.protocol {
        Protocol::H2 => {
            let io = Prefixed::new(start.buf, io);
            hyper_conn::serve_h2(state, &snap, io, conn, &stop).await
        }
        Protocol::Http1 => serve_http1(state, snap, io, conn, stop, start).await,
    }
}

/// The lean loop, until a request it does not take hands the connection
/// to hyper.
async fn serve_http1<IO>(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    io: IO,
    conn: Arc<Conn>,
    stop: Arc<AtomicBool>,
    start: Start,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The lean loop's timer is dropped with it, before hyper's turn.
    let Some((buf, io)) = lean_loop(&state, &snap, io, &conn, &stop, start).await? else {
        return Ok(());
    };
    let http10 = head::is_http10(&buf);
    let io = Prefixed::new(buf, io);
    hyper_conn::serve_http1(state, &snap, io, conn, &stop, http10).await
}

/// Serve plain requests until the connection ends (`None`) or a request
/// the loop does not take arrives: then the connection and the bytes
/// read of it, for hyper.
async fn lean_loop<IO>(
    state: &Arc<State>,
    snap: &Snapshot,
    mut io: IO,
    conn: &Arc<Conn>,
    stop: &AtomicBool,
    start: Start,
) -> Result<Option<(BytesMut, IO)>, BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let header_read = snap.timeouts.header_read;
    let max_head = snap.limits.max_header_bytes;
    let mut buf = start.buf;
    if buf.capacity() == 0 {
        buf.reserve(READ_BUF);
    }
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    // One timer for the connection's life, moved on for each head's wait
    // (moving a registered timer later is an atomic update in tokio). The
    // first head's wait may have begun at accept.
    let due = start
        .head_due
        .unwrap_or_else(|| Instant::now() + header_read);
    let mut head_due = pin!(tokio::time::sleep_until(due));
    let mut armed = true;
    loop {
        // A whole head, within header_read of starting to wait for it.
        let plain = loop {
            if !buf.is_empty() {
                match head::parse(&mut buf, max_head) {
                    Head::Plain(p) => break p,
                    Head::Partial => {}
                    Head::Handover => return Ok(Some((buf, io))),
                    Head::Malformed(status) => {
                        malformed(&mut io, &mut out, status).await?;
                        return Ok(None);
                    }
                }
            }
            if !armed {
                head_due.as_mut().reset(Instant::now() + header_read);
                armed = true;
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_BUF);
            }
            match read_some(&mut io, &mut buf, head_due.as_mut(), stop).await {
                Read::Data => {}
                Read::Stop | Read::Eof => return Ok(None),
                Read::Timeout => {
                    tracing::debug!(peer = %conn.peer, "no whole request head within header_read; closing");
                    return Ok(None);
                }
            }
        };
        // Not polled again until the next head's wait moves it on.
        armed = false;

        let head_request = plain.req.method == Method::HEAD;
        let http10 = plain.req.version == Version::HTTP_10;
        let Ok(resp) = proxy::serve(state, conn, plain.req).await;
        let close = plain.close || stop.load(Ordering::Acquire);
        let req = Req {
            head: head_request,
            http10,
        };
        if respond(&mut io, &mut out, resp, req, close).await? {
            let _ = io.shutdown().await;
            return Ok(None);
        }
    }
}

/// What [`read_some`] came back with.
pub enum Read {
    Data,
    Eof,
    Timeout,
    Stop,
}

/// One read into `buf` (which has room), unless `due` passes first or,
/// while `buf` is empty (between requests), `stop` is set: a drain closes
/// a connection between requests at once.
pub async fn read_some<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    mut due: Pin<&mut Sleep>,
    stop: &AtomicBool,
) -> Read {
    let idle = buf.is_empty();
    poll_fn(|cx| {
        if idle && stop.load(Ordering::Acquire) {
            return Poll::Ready(Read::Stop);
        }
        if let Poll::Ready(r) = poll_read_buf(io, buf, cx) {
            return Poll::Ready(match r {
                Ok(0) | Err(_) => Read::Eof,
                Ok(_) => Read::Data,
            });
        }
        due.as_mut().poll(cx).map(|()| Read::Timeout)
    })
    .await
}

fn poll_read_buf<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// What the response writer needs to know of the request.
#[derive(Clone, Copy)]
struct Req {
    /// `HEAD`: no body is written.
    head: bool,
    /// HTTP/1.0: no chunked coding.
    http10: bool,
}

/// Write the response; `Ok(true)` when the connection must close after it.
async fn respond<IO>(
    io: &mut IO,
    out: &mut Vec<u8>,
    resp: Response<proxy::Body>,
    req: Req,
    close: bool,
) -> Result<bool, BoxError>
where
    IO: AsyncWrite + Unpin,
{
    let head_request = req.head;
    let (parts, mut body) = resp.into_parts();
    let mut fields = proxy::take_head_fields(&mut body);
    if req.http10 && head_request {
        // The gateway's answer to a HEAD keeps its Transfer-Encoding, which
        // an HTTP/1.0 client must not be sent (RFC 9112 §6.1). Rare: the
        // copy is fine.
        if let Some(f) = fields.as_mut() {
            f.retain(|n| !n.eq_ignore_ascii_case(b"transfer-encoding"));
        }
    }
    let hint = body.size_hint();
    let info = BodyInfo {
        head_request,
        ended: body.is_end_stream(),
        // The gateway's answer to a HEAD is bodiless whatever its framing
        // says: its lines carry that framing, and no length is made up.
        exact: hint
            .exact()
            .filter(|_| !(head_request && matches!(body, Either::Left(_)))),
        http10: req.http10,
    };
    out.clear();
    let (framing, close) = write::head(
        out,
        parts.status,
        &parts.headers,
        fields.as_ref(),
        &info,
        close,
    );
    // The lines are a piece of an arena (`upstream::response_head`): let it go
    // before a long body streams.
    drop((parts, fields));
    if framing == Framing::None {
        io.write_all(out).await?;
        io.flush().await?;
        if head_request {
            // Let the upstream connection see its (empty) body end.
            while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                frame?;
            }
        }
        return Ok(close);
    }
    loop {
        let pending = !out.is_empty();
        let step = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            // Nothing more right now: send what is buffered first.
            Poll::Pending if pending => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        let frame = match step {
            None => {
                io.write_all(out).await?;
                io.flush().await?;
                out.clear();
                continue;
            }
            Some(None) => break,
            Some(Some(frame)) => frame?,
        };
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers: not sent on HTTP/1.1 here
        };
        if data.is_empty() {
            continue;
        }
        match framing {
            Framing::Chunked => write::chunk(out, &data),
            _ if data.len() >= COPY_BELOW => {
                io.write_all(out).await?;
                out.clear();
                io.write_all(&data).await?;
                data.advance(data.len());
            }
            _ => out.extend_from_slice(&data),
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(write::LAST_CHUNK);
    }
    io.write_all(out).await?;
    io.flush().await?;
    out.clear();
    Ok(close)
}

/// Answer a head that is not HTTP, or too large, and close.
async fn malformed<IO>(io: &mut IO, out: &mut Vec<u8>, status: StatusCode) -> Result<(), BoxError>
where
    IO: AsyncWrite + Unpin,
{
    let rid = crate::request_id::generate();
    let why = if status == StatusCode::BAD_REQUEST {
        "malformed_request"
    } else {
        "request_head_too_large"
    };
    let answer = crate::deny::error(status, why, rid.as_str());
    let mut resp = crate::message::local_body::answer(answer).map(Either::Right);
    if let Some(f) = proxy::head_fields(resp.body_mut()) {
        f.request_id = Some(rid);
    }
    let req = Req {
        head: false,
        http10: false,
    };
    respond(io, out, resp, req, true).await?;
    let _ = io.shutdown().await;
    Ok(())
}
