//! The member listener: accept, TLS handshake (client certificate if any),
//! then HTTP (`crate::downstream`), each request to `proxy::serve`.
//!
//! TLS material and limits are read from the snapshot current at accept
//! time, so a reload rotates certificates for new connections while open
//! ones carry on with what they negotiated.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Snapshot;
use crate::downstream;
use crate::drain::{Drain, Watcher};
use crate::limits::Claim;
use crate::proxy::Conn;
use crate::proxy_protocol;
use crate::raw_tcp::RawTcp;
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
    let (claim, evicted) = if snap.trusted_proxies.contains(peer.ip()) {
        (Claim::exempt(peer.ip()), None)
    } else {
        let (claim, evicted) = state
            .limiter
            .open_unauthenticated(peer.ip(), &snap.limits.per_ip);
        (claim, Some(evicted))
    };
    let claim = Released {
        state: state.clone(),
        claim: Arc::new(claim),
    };
    let serve = serve_stream(state, snap, stream, peer, claim.claim.clone(), watcher);
    match evicted {
        // Dropping `serve` closes the socket. Once the claim is released
        // the receiver resolves `Err`, and `select!` stops polling it.
        Some(evicted) => tokio::select! {
            biased;
            Ok(()) = evicted => {
                tracing::debug!(%peer, "closing the oldest unauthenticated connection from this address: a newer one arrived at max_unauthenticated_per_ip");
            }
            () = serve => {}
        },
        None => serve.await,
    }
}

async fn serve_stream(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    claim: Arc<Claim>,
    watcher: Watcher,
) {
    match snap.tls.clone() {
        Some(cfg) => {
            let handshake = TlsAcceptor::from(cfg).accept(RawTcp::new(stream));
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
            let conn = Conn::new(peer, true, cert, claim);
            serve_http(state, snap, tls_stream, conn, watcher).await;
        }
        None => {
            let conn = Conn::new(peer, false, None, claim);
            serve_http(state, snap, RawTcp::new(stream), conn, watcher).await;
        }
    }
}

/// Gives back the connection's unauthenticated slot when it closes, if an
/// identified request has not done so already.
struct Released {
    state: Arc<State>,
    claim: Arc<Claim>,
}

impl Drop for Released {
    fn drop(&mut self) {
        self.claim.release(&self.state.limiter);
    }
}

async fn serve_http<IO>(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    io: IO,
    conn: Conn,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn);
    let shed = conn.shed.clone();
    let connection = downstream::Connection::new(state, snap, io, conn);
    if let Err(e) = watcher.watch(connection, shed).await {
        tracing::debug!("connection ended: {e}");
    }
}
