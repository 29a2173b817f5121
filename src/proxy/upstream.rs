//! The pooled HTTP/1.1 client to the gateway, and what its failures mean.
//!
//! Each upstream authority has a small LIFO pool of hyper http1
//! connections. A connection goes back to the pool only when its response
//! body has ended (see [`ResponseBody`]), so a long SSE stream never blocks
//! another request; a pooled connection the gateway closed meanwhile is
//! skipped, and a request it could not take is retried on a fresh one.
//! This replaces hyper-util's generic pool, whose per-request key hashing
//! and checkout machinery cost more than the rest of the client.
//! Failures are sorted into a few kinds, each with its status and a label
//! for `clawgate_upstream_errors_total{kind}`.

use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The body sent upstream: the client's body, capped at `max_body_bytes`.
pub type OutBody = Limited<Incoming>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// Nothing listening, refused, unreachable, or connect timed out.
    Connect,
    /// No response headers within `upstream_response`.
    Timeout,
    /// The connection broke during the exchange.
    Reset,
    /// The client's body went past `max_body_bytes` while streaming.
    BodyTooLarge,
    /// The client's body broke while streaming (bad chunk, cut short).
    ClientBody,
}

impl UpstreamError {
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Reset => "reset",
            UpstreamError::BodyTooLarge => "body_too_large",
            UpstreamError::ClientBody => "client_body",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            UpstreamError::Connect | UpstreamError::Reset => StatusCode::BAD_GATEWAY,
            UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UpstreamError::ClientBody => StatusCode::BAD_REQUEST,
        }
    }

    /// Counted as an upstream fault (not the client's).
    pub fn is_upstream_fault(self) -> bool {
        !matches!(
            self,
            UpstreamError::BodyTooLarge | UpstreamError::ClientBody
        )
    }
}

/// Idle connections kept per upstream; more are closed when returned.
const MAX_IDLE: usize = 256;

type Sender = hyper::client::conn::http1::SendRequest<OutBody>;

/// Idle connections to one upstream authority.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Sender>>,
}

impl Pool {
    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, s: Sender) {
        if s.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(s);
            }
        }
    }
}

/// A connection on loan for one exchange; returned when its body ends.
pub struct Lease {
    sender: Sender,
    pool: Arc<Pool>,
}

#[derive(Default)]
pub struct UpstreamClient {
    /// (authority, pool): a handful of upstreams, so a scan beats hashing.
    pools: RwLock<Vec<(String, Arc<Pool>)>>,
}

impl UpstreamClient {
    pub fn new() -> Self {
        Self::default()
    }

    fn pool(&self, authority: &str) -> Arc<Pool> {
        if let Ok(pools) = self.pools.read() {
            if let Some((_, p)) = pools.iter().find(|(a, _)| a == authority) {
                return p.clone();
            }
        }
        let mut pools = match self.pools.write() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        if let Some((_, p)) = pools.iter().find(|(a, _)| a == authority) {
            return p.clone();
        }
        let p = Arc::new(Pool::default());
        pools.push((authority.to_string(), p.clone()));
        p
    }

    async fn connect(authority: &Authority, timeout: Duration) -> Result<Sender, UpstreamError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(|_| UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| UpstreamError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender)
    }

    /// Send `req` (origin-form URI, `Host` already set) to `authority`:
    /// a pooled connection if one is alive, else a new one.
    pub async fn send(
        &self,
        authority: &Authority,
        req: Request<OutBody>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Lease), UpstreamError> {
        let pool = self.pool(authority.as_str());
        let exchange = async {
            let mut req = req;
            while let Some(mut sender) = pool.take() {
                if sender.ready().await.is_err() {
                    continue;
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => return Ok((resp, Lease { sender, pool })),
                    Err(mut e) => match e.take_message() {
                        // Never written: the pooled connection was already
                        // going away. Try the next one.
                        Some(r) => req = r,
                        None => return Err(classify(e.error())),
                    },
                }
            }
            let mut sender = Self::connect(authority, connect_timeout).await?;
            sender.ready().await.map_err(|_| UpstreamError::Connect)?;
            match sender.send_request(req).await {
                Ok(resp) => Ok((resp, Lease { sender, pool })),
                Err(e) => Err(classify(&e)),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(r) => r,
        }
    }
}

fn classify(e: &hyper::Error) -> UpstreamError {
    let chain = || std::iter::successors(std::error::Error::source(e), |s| s.source());
    if chain().any(|s| s.is::<LengthLimitError>()) {
        return UpstreamError::BodyTooLarge;
    }
    // hyper's "user" error here is the request body we were streaming.
    if e.is_user()
        || chain().any(|s| {
            s.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_user)
        })
    {
        return UpstreamError::ClientBody;
    }
    UpstreamError::Reset
}

/// A response body streamed from the gateway. If the gateway breaks off
/// mid-body (reset, closed early) after the head went to the client, the
/// client's connection is cut and the fault is counted and logged once,
/// like one before the head.
pub struct ResponseBody {
    inner: Incoming,
    /// `clawgate_upstream_errors_total{upstream,kind="reset"}` and the
    /// request ID, until the fault is reported.
    fault: Option<(prometheus::IntCounter, HeaderValue)>,
    /// The connection, back to its pool once this body has ended.
    lease: Option<Lease>,
    /// For event streams: ends the body when the grant is revoked.
    watch: Option<super::tunnel::StreamWatch>,
}

impl ResponseBody {
    pub fn new(
        inner: Incoming,
        reset: prometheus::IntCounter,
        request_id: HeaderValue,
        lease: Option<Lease>,
    ) -> Self {
        ResponseBody {
            inner,
            fault: Some((reset, request_id)),
            lease,
            watch: None,
        }
    }

    /// End this (long-lived) body when `watch` says so.
    pub fn watched(mut self, watch: super::tunnel::StreamWatch) -> Self {
        self.watch = Some(watch);
        self
    }

    fn release(&mut self) {
        if let Some(Lease { sender, pool }) = self.lease.take() {
            pool.put(sender);
        }
    }
}

impl Drop for ResponseBody {
    /// A body dropped before its end (client went away) takes its
    /// connection with it; one that ended returns it. Empty bodies are
    /// never polled, so this is also where they give the connection back.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(w) = self.watch.as_mut() {
            if w.poll_stop(cx).is_ready() {
                // Mid-stream: the connection cannot be reused.
                self.watch = None;
                self.lease = None;
                return Poll::Ready(None);
            }
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = &polled {
            self.release();
        }
        if let Poll::Ready(Some(Err(e))) = &polled {
            self.lease = None;
            if let Some((reset, request_id)) = self.fault.take() {
                reset.inc();
                tracing::warn!(request_id = ?request_id, "upstream response broke off mid-body: {e}");
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
