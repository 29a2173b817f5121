//! hyper for what the lean loop leaves to it: h2 connections (settled at
//! accept, by ALPN or the preface), and HTTP/1.1 ones from their first
//! request with a body, a WebSocket upgrade or `Expect`.
//!
//! An HTTP/1.0 request with a body comes here too. hyper answers it with
//! an `HTTP/1.0` status line and cannot be told otherwise; RFC 9110 §6.2
//! wants the server's own version. Such a connection serves that one
//! request (`connection: close`), so [`StatusVersion`] has one status
//! line to correct, at the start of what is written.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::BoxError;
use crate::config::Snapshot;
use crate::proxy::{self, Conn};
use crate::state::State;

/// Serve `io`'s HTTP/1.1 with hyper until it ends; `stop` asks for a
/// graceful end. `http10`: the first request is HTTP/1.0 (served alone,
/// and answered `HTTP/1.1`).
pub(super) async fn serve_http1<IO>(
    state: Arc<State>,
    snap: &Snapshot,
    io: IO,
    conn: Arc<Conn>,
    stop: &AtomicBool,
    http10: bool,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(snap.timeouts.header_read)
        .max_buf_size(snap.limits.max_header_bytes)
        .max_headers(super::head::MAX_HEADERS)
        .keep_alive(!http10);
    let requested = Arc::new(AtomicBool::new(false));
    let svc = service(state, conn, requested.clone());
    let io = StatusVersion {
        io,
        fix_at: http10.then_some(0),
    };
    let connection = pin!(builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades());
    let graceful = |c: Pin<&mut _>| http1::UpgradeableConnection::graceful_shutdown(c);
    drive(connection, graceful, snap, stop, &requested).await
}

/// Serve `io`'s h2 with hyper until it ends; `stop` asks for a graceful
/// end (GOAWAY).
pub(super) async fn serve_h2<IO>(
    state: Arc<State>,
    snap: &Snapshot,
    io: IO,
    conn: Arc<Conn>,
    stop: &AtomicBool,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        // RFC 8441: browsers open WebSockets as streams of the page's h2
        // connection once it offers them (`proxy::forward`'s h2_websocket).
        .enable_connect_protocol()
        .max_header_list_size(snap.limits.max_header_bytes as u32)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let requested = Arc::new(AtomicBool::new(false));
    let svc = service(state, conn, requested.clone());
    let connection = pin!(builder.serve_connection(TokioIo::new(io), svc));
    let graceful = |c: Pin<&mut _>| http2::Connection::graceful_shutdown(c);
    drive(connection, graceful, snap, stop, &requested).await
}

/// Every request of the connection to `proxy::serve`; `requested` is set
/// at the first.
fn service(
    state: Arc<State>,
    conn: Arc<Conn>,
    requested: Arc<AtomicBool>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<proxy::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<proxy::Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |req: http::Request<Incoming>| {
        requested.store(true, Ordering::Relaxed);
        let (state, conn) = (state.clone(), conn.clone());
        async move {
            let http10 = req.version() == http::Version::HTTP_10;
            let req = crate::message::ClientRequest::from_hyper(req);
            let Ok(mut resp) = proxy::serve(&state, &conn, req).await;
            // hyper writes heads from a HeaderMap: the prewritten fields go in.
            let fields = proxy::take_head_fields(resp.body_mut());
            if let Some(f) = fields {
                f.append_to(resp.headers_mut());
            }
            if http10 {
                // Said outright: under an `HTTP/1.1` status line, silence
                // would mean the connection stays open.
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(resp)
        }
    })
}

/// Poll hyper's `connection` to its end, asking it to end gracefully once
/// `stop` is set.
async fn drive<C, E>(
    mut connection: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    snap: &Snapshot,
    stop: &AtomicBool,
    requested: &AtomicBool,
) -> Result<(), BoxError>
where
    C: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    // hyper's header_read timer starts only once the first bytes told it
    // the HTTP version, and h2 has none: a connection that never sends a
    // request would be held forever. The first must arrive within
    // header_read.
    let mut first = pin!(tokio::time::sleep(snap.timeouts.header_read));
    let mut signalled = false;
    poll_fn(|cx| {
        if !signalled && stop.load(Ordering::Acquire) {
            signalled = true;
            graceful(connection.as_mut());
        }
        if let Poll::Ready(r) = connection.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        if !requested.load(Ordering::Relaxed) && first.as_mut().poll(cx).is_ready() {
            tracing::debug!("no request within header_read; closing");
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    })
    .await
}

/// Writes `HTTP/1.1` for the `HTTP/1.0` hyper puts at the start of its
/// answer to an HTTP/1.0 request; passes everything else through.
struct StatusVersion<IO> {
    io: IO,
    /// Where the start of the stream is, relative to the next byte to be
    /// written, while the status line is still to be corrected.
    fix_at: Option<usize>,
}

const V10: &[u8] = b"HTTP/1.0 ";

impl<IO: AsyncWrite + Unpin> StatusVersion<IO> {
    /// Write `buf`, correcting the status line's version in it if that
    /// is still to be written.
    fn poll_fixing(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let Some(at) = self.fix_at else {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        };
        if at == 0 && !buf.starts_with(V10) {
            // Not the answer this is for: nothing to correct.
            self.fix_at = None;
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        // The `0` of `HTTP/1.0`, counted from the next byte to be written.
        let digit = V10.len() - 2 - at;
        let mut fixed = buf[..buf.len().min(4096)].to_vec();
        if let Some(d) = fixed.get_mut(digit) {
            *d = b'1';
        }
        let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &fixed))?;
        self.fix_at = (n <= digit).then_some(at + n);
        Poll::Ready(Ok(n))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for StatusVersion<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StatusVersion<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_fixing(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.fix_at.is_some() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return this.poll_fixing(cx, first);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
