//! What an exchange with the gateway can fail with: each kind has its
//! status, its reason code and its `clawgate_upstream_errors_total{kind}`
//! label, and is the gateway's fault or the client's.

use http::StatusCode;
use http_body_util::LengthLimitError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// Nothing listening, refused or unreachable.
    ConnectRefused,
    /// No TCP connection within `upstream_connect`.
    ConnectTimeout,
    /// The gateway did not take the request, or send its response
    /// headers, within `upstream_response`.
    ResponseTimeout,
    /// The connection broke during the exchange.
    Reset,
    /// The client's body went past `max_body_bytes` while streaming.
    BodyTooLarge,
    /// The client's body broke while streaming (bad chunk, cut short).
    ClientBody,
    /// The client sent no body bytes for `header_read` mid-body.
    ClientBodyTimeout,
}

impl UpstreamError {
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::ConnectRefused => "connect_refused",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::ResponseTimeout => "response_timeout",
            UpstreamError::Reset => "reset",
            UpstreamError::BodyTooLarge => "body_too_large",
            UpstreamError::ClientBody => "client_body",
            UpstreamError::ClientBodyTimeout => "client_body_timeout",
        }
    }

    /// The reason code in the response body and the access log:
    /// `upstream_` + [`kind`](Self::kind).
    pub fn code(self) -> &'static str {
        match self {
            UpstreamError::ConnectRefused => "upstream_connect_refused",
            UpstreamError::ConnectTimeout => "upstream_connect_timeout",
            UpstreamError::ResponseTimeout => "upstream_response_timeout",
            UpstreamError::Reset => "upstream_reset",
            UpstreamError::BodyTooLarge => "upstream_body_too_large",
            UpstreamError::ClientBody => "upstream_client_body",
            UpstreamError::ClientBodyTimeout => "upstream_client_body_timeout",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            UpstreamError::ConnectRefused | UpstreamError::Reset => StatusCode::BAD_GATEWAY,
            UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            UpstreamError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UpstreamError::ClientBody => StatusCode::BAD_REQUEST,
            UpstreamError::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Counted as an upstream fault (not the client's).
    pub fn is_upstream_fault(self) -> bool {
        !matches!(
            self,
            UpstreamError::BodyTooLarge
                | UpstreamError::ClientBody
                | UpstreamError::ClientBodyTimeout
        )
    }
}

/// The client's body failed while it was being sent on.
pub(super) fn classify_body(e: &(dyn std::error::Error + 'static)) -> UpstreamError {
    let chain = || std::iter::successors(Some(e), |s| s.source());
    if chain().any(|s| s.is::<LengthLimitError>()) {
        UpstreamError::BodyTooLarge
    } else {
        UpstreamError::ClientBody
    }
}
