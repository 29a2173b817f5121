//! The member listener: accept, TLS handshake (client certificate if any),
//! then HTTP/1.1 or HTTP/2 with upgrades, each request to `proxy::serve`.
//!
//! TLS material and limits are read from the snapshot current at accept
//! time, so a reload rotates certificates for new connections while open
//! ones carry on with what they negotiated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::coarse_timer::CoarseTimer;
use crate::config::Snapshot;
use crate::drain::{Drain, Watcher};
use crate::proxy::{self, Conn};
use crate::proxy_protocol;
use crate::state::State;
use crate::tls;

/// Counts one open client connection in the gauge until dropped. A
/// WebSocket tunnel holds its own, since the hyper connection that carried
/// the upgrade ends when it hands the socket over.
pub(crate) struct OpenConn(prometheus::IntGauge);

impl OpenConn {
    pub(crate) fn count(gauge: &prometheus::IntGauge) -> OpenConn {
        gauge.inc();
        OpenConn(gauge.clone())
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accept until `stop` turns true; each connection is tracked by `graceful`.
pub async fn accept_loop(
    state: Arc<State>,
    listener: TcpListener,
    graceful: Drain,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let snap = state.snapshot();
        let open = state.metrics.connections_open.get();
        if open >= snap.limits.max_connections as i64 {
            tracing::warn!(%peer, open, "max_connections reached; closing new connection");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let guard = OpenConn::count(&state.metrics.connections_open);
        let watcher = graceful.watcher();
        let state = state.clone();
        tokio::spawn(async move {
            let _guard = guard;
            handle_connection(state, snap, stream, peer, watcher).await;
        });
    }
}

async fn handle_connection(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    mut stream: TcpStream,
    mut peer: std::net::SocketAddr,
    watcher: Watcher,
) {
    if snap.proxy_protocol {
        if !snap.trusted_proxies.contains(peer.ip()) {
            tracing::warn!(%peer, "PROXY protocol from a peer not in trusted_proxies; closing");
            return;
        }
        match proxy_protocol::read(&mut stream, snap.timeouts.header_read).await {
            Ok(proxy_protocol::Header::Proxied { source }) => peer = source,
            Ok(proxy_protocol::Header::Local) => {}
            Err(e) => {
                tracing::debug!(%peer, "bad PROXY header: {e}");
                return;
            }
        }
    }
    // Per-IP cap on connections that have not identified yet. Trusted
    // proxies carry many clients on one address and are exempt.
    let counted = !snap.trusted_proxies.contains(peer.ip());
    if counted
        && !state
            .limiter
            .open_unauthenticated(peer.ip(), &snap.limits.per_ip)
    {
        tracing::debug!(%peer, "too many unauthenticated connections from this address");
        return;
    }
    let slot = Unauthenticated {
        state: state.clone(),
        ip: peer.ip(),
        held: Arc::new(AtomicBool::new(counted)),
    };
    match snap.tls.clone() {
        Some(cfg) => {
            let handshake = TlsAcceptor::from(cfg).accept(stream);
            let tls_stream = match tokio::time::timeout(snap.timeouts.header_read, handshake).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let cert = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(tls::peer_cert);
            let conn = Conn::new(peer, true, cert, slot.held.clone());
            serve_http(state, &snap, tls_stream, conn, watcher).await;
        }
        None => {
            let conn = Conn::new(peer, false, None, slot.held.clone());
            serve_http(state, &snap, stream, conn, watcher).await;
        }
    }
}

/// Gives back the connection's unauthenticated slot when it closes, if an
/// identified request has not done so already.
struct Unauthenticated {
    state: Arc<State>,
    ip: std::net::IpAddr,
    held: Arc<AtomicBool>,
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.state.limiter.release_unauthenticated(self.ip);
        }
    }
}

async fn serve_http<IO>(state: Arc<State>, snap: &Snapshot, io: IO, conn: Conn, watcher: Watcher)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(CoarseTimer)
        .header_read_timeout(snap.timeouts.header_read)
        .max_buf_size(snap.limits.max_header_bytes)
        .max_headers(100)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(snap.limits.max_header_bytes as u32)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let conn = Arc::new(conn);
    let shed = conn.shed.clone();
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let svc = service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        proxy::serve(state.clone(), conn.clone(), req)
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let connection = watcher.watch(connection.into_owned(), shed);
    tokio::pin!(connection);
    // hyper's header_read timer starts only once the first bytes told it
    // the HTTP version: a connection that never sends any would be held
    // forever. The first request must arrive within header_read.
    let ended = tokio::select! {
        r = &mut connection => r,
        _ = crate::coarse_timer::Sleep::after(snap.timeouts.header_read) => {
            if !requested.load(Ordering::Relaxed) {
                tracing::debug!("no request within header_read; closing");
                return;
            }
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("connection ended: {e}");
    }
}
