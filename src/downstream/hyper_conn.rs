//! hyper for what the lean loop leaves to it: h2 (prior knowledge or
//! ALPN), request bodies, WebSocket upgrades, HTTP/1.0, `Expect`.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::BoxError;
use crate::coarse_timer::{CoarseTimer, Sleep};
use crate::config::Snapshot;
use crate::proxy::{self, Conn};
use crate::state::State;

/// Serve `io` with hyper until it ends; `stop` asks for a graceful end.
pub(super) async fn serve<IO>(
    state: Arc<State>,
    snap: &Snapshot,
    io: IO,
    conn: Arc<Conn>,
    stop: &AtomicBool,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(CoarseTimer)
        .header_read_timeout(snap.timeouts.header_read)
        .max_buf_size(snap.limits.max_header_bytes)
        .max_headers(super::head::MAX_HEADERS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        // RFC 8441: browsers open WebSockets as streams of the page's h2
        // connection once it offers them (`proxy::forward`'s h2_websocket).
        .enable_connect_protocol()
        .max_header_list_size(snap.limits.max_header_bytes as u32)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        seen.store(true, Ordering::Relaxed);
        let (state, conn) = (state.clone(), conn.clone());
        async move {
            let req = proxy::ClientRequest::from_hyper(req);
            let Ok(mut resp) = proxy::serve(&state, &conn, req).await;
            // hyper writes heads from a HeaderMap: the prewritten fields go in.
            let fields = proxy::take_head_fields(resp.body_mut());
            if let Some(f) = fields {
                f.append_to(resp.headers_mut());
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), svc));
    // hyper's header_read timer starts only once the first bytes told it
    // the HTTP version, and h2 has none: a connection that never sends a
    // request would be held forever. The first must arrive within
    // header_read.
    let mut first = pin!(Sleep::after(snap.timeouts.header_read));
    let mut signalled = false;
    poll_fn(|cx| {
        if !signalled && stop.load(Ordering::Acquire) {
            signalled = true;
            connection.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(r) = connection.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if !requested.load(Ordering::Relaxed) && first.as_mut().poll(cx).is_ready() {
            tracing::debug!("no request within header_read; closing");
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    })
    .await
}
