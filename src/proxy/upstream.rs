//! The pooled HTTP/1.1 client to the gateway, and what its failures mean.
//!
//! One hyper-util client serves every upstream (its pool is keyed by
//! authority). Failures are sorted into a few kinds, each with its status
//! and a label for `clawgate_upstream_errors_total{kind}`.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;
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
}

impl UpstreamError {
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Reset => "reset",
            UpstreamError::BodyTooLarge => "body_too_large",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            UpstreamError::Connect | UpstreamError::Reset => StatusCode::BAD_GATEWAY,
            UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// Counted as an upstream fault (not the client's).
    pub fn is_upstream_fault(self) -> bool {
        !matches!(self, UpstreamError::BodyTooLarge)
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
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<LengthLimitError>() {
            return UpstreamError::BodyTooLarge;
        }
        source = s.source();
    }
    UpstreamError::Reset
}
