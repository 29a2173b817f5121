//! The pooled HTTP/1.1 client to the gateway, and what its failures mean.
//!
//! One hyper-util client serves every upstream (its pool is keyed by
//! authority). Failures are sorted into a few kinds, each with its status
//! and a label for `clawgate_upstream_errors_total{kind}`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

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

pub struct UpstreamClient {
    client: Client<HttpConnector, OutBody>,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .set_host(false)
            .build(connector);
        UpstreamClient { client }
    }

    pub async fn send(
        &self,
        req: Request<OutBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    if e.is_connect() {
        return UpstreamError::Connect;
    }
    let chain = || std::iter::successors(std::error::Error::source(e), |s| s.source());
    if chain().any(|s| s.is::<LengthLimitError>()) {
        return UpstreamError::BodyTooLarge;
    }
    // hyper's "user" error here is the request body we were streaming.
    if chain().any(|s| {
        s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
    }) {
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
}

impl ResponseBody {
    pub fn new(inner: Incoming, reset: prometheus::IntCounter, request_id: HeaderValue) -> Self {
        ResponseBody {
            inner,
            fault: Some((reset, request_id)),
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
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
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
