//! The member listener: accept, the connection limits, a PROXY v2 header
//! if configured, the TLS handshake (client certificate if any), the
//! connection's protocol, then `downstream` for its HTTP.
//!
//! TLS material and limits are read from the snapshot current at accept
//! time, so a reload rotates certificates for new connections while open
//! ones carry on with what they negotiated.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::handshake::{self, Failure, FailureLog, Reason};
use super::tls::Refused;
use super::{proxy_protocol, tls};
use crate::config::Snapshot;
use crate::downstream::Protocol;
use crate::downstream::{self, BoxError, Read, Start};
use crate::drain::{Drain, Graceful, Watcher};
use crate::limits::conn_cap::{Claim, ConnCap};
use crate::observe::metrics::OpenConn;
use crate::proxy::Conn;
use crate::state::State;

/// Accept until `stop` turns true; each connection is tracked by `graceful`.
pub async fn accept_loop(
    state: Arc<State>,
    listener: TcpListener,
    graceful: Drain,
    mut stop: watch::Receiver<bool>,
) {
    let edge = Arc::new(Edge::default());
    FailureLog::register(&state.metrics);
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
        let (state, edge) = (state.clone(), edge.clone());
        tokio::spawn(async move {
            let _guard = guard;
            handle_connection(state, edge, snap, stream, peer, watcher).await;
        });
    }
}

/// What the listener keeps across its connections.
#[derive(Default)]
struct Edge {
    cap: Arc<ConnCap>,
    handshake_failures: FailureLog,
}

async fn handle_connection(
    state: Arc<State>,
    edge: Arc<Edge>,
    snap: Arc<Snapshot>,
    mut stream: TcpStream,
    mut peer: SocketAddr,
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
        let max = snap.limits.per_ip.max_unauthenticated_per_ip;
        let (claim, evicted) = edge.cap.open(peer.ip(), max);
        (claim, Some(evicted))
    };
    let claim = Released(Arc::new(claim));
    let serve = serve_stream(state, &edge, snap, stream, peer, claim.0.clone(), watcher);
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
    edge: &Edge,
    snap: Arc<Snapshot>,
    stream: TcpStream,
    peer: SocketAddr,
    claim: Arc<Claim>,
    watcher: Watcher,
) {
    let Some(cfg) = snap.tls.clone() else {
        let conn = Conn::new(peer, false, None, claim);
        return serve_http(state, snap, stream, conn, None, watcher).await;
    };
    let header_read = snap.timeouts.header_read;
    let failure = match tls::accept(cfg, stream, header_read).await {
        Ok(tls) => {
            let conn = Conn::new(peer, true, tls.cert, claim);
            return serve_http(state, snap, tls.stream, conn, tls.protocol, watcher).await;
        }
        Err(Refused::Silent) => return,
        Err(Refused::Failed(failure)) => failure,
        Err(Refused::PlainHttp(stream)) => {
            let failure = Failure {
                reason: Reason::PlainHttp,
                detail: "a plain HTTP request on the TLS port".into(),
            };
            let log = &edge.handshake_failures;
            log.record(&state.metrics, peer, &failure);
            return handshake::answer_plain_http(stream).await;
        }
    };
    edge.handshake_failures
        .record(&state.metrics, peer, &failure);
}

/// Gives back the connection's unauthenticated slot when it closes, if an
/// identified request has not done so already.
struct Released(Arc<Claim>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Serve `io`'s HTTP under the drain. `protocol`: as ALPN settled it;
/// `None` leaves it to the first bytes.
async fn serve_http<IO>(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    io: IO,
    conn: Conn,
    protocol: Option<Protocol>,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn);
    let shed = conn.shed.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let run = Box::pin(serve(state, snap, io, conn, protocol, stop.clone()));
    if let Err(e) = watcher.watch(Served { run, stop }, shed).await {
        tracing::debug!("connection ended: {e}");
    }
}

async fn serve<IO>(
    state: Arc<State>,
    snap: Arc<Snapshot>,
    mut io: IO,
    conn: Arc<Conn>,
    protocol: Option<Protocol>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = match protocol {
        Some(protocol) => Start {
            protocol,
            buf: bytes::BytesMut::new(),
            head_due: None,
        },
        None => match first_bytes(&mut io, &snap, &stop).await {
            Some(start) => start,
            None => return Ok(()),
        },
    };
    downstream::serve(state, snap, io, conn, stop, start).await
}

/// Read until the first bytes tell h2's preface from HTTP/1, within
/// `header_read` (the wait for the first request head starts here);
/// `None` if the connection ends, times out or is drained first.
async fn first_bytes<IO>(io: &mut IO, snap: &Snapshot, stop: &AtomicBool) -> Option<Start>
where
    IO: AsyncRead + Unpin,
{
    let mut buf = Start::buffer();
    let mut head_due = std::pin::pin!(tokio::time::sleep(snap.timeouts.header_read));
    loop {
        if let Some(protocol) = Protocol::sniff(&buf) {
            return Some(Start {
                protocol,
                buf,
                head_due: Some(head_due.deadline()),
            });
        }
        match downstream::read_some(io, &mut buf, head_due.as_mut(), stop).await {
            Read::Data => {}
            Read::Eof | Read::Stop => return None,
            Read::Timeout => {
                tracing::debug!("no request within header_read; closing");
                return None;
            }
        }
    }
}

/// One connection being served: the future, and the flag that asks it to
/// finish the request in flight and close.
struct Served {
    run: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>,
    stop: Arc<AtomicBool>,
}

impl Future for Served {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().run.as_mut().poll(cx)
    }
}

impl Graceful for Served {
    type Error = BoxError;

    /// An idle connection closes at its next poll (the drain wakes it).
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stop.store(true, Ordering::Release);
    }
}
