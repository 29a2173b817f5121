//! The client's request as the request path takes it, from either reader:
//! the lean HTTP/1.1 loop (`crate::downstream`) or hyper.

use http::{Method, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::fields::Fields;
use super::RequestBody;

pub struct ClientRequest {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub fields: Fields,
    pub body: RequestBody,
    /// hyper's handle on the connection once it answers 101 (HTTP/1.1
    /// requests hyper read that asked to upgrade).
    pub upgrade: Option<OnUpgrade>,
    /// An HTTP/2 extended CONNECT with `:protocol websocket` (RFC 8441):
    /// a WebSocket opened as a stream of a multiplexed connection, which
    /// the gateway gets as an HTTP/1.1 `GET` with `Upgrade: websocket`.
    pub h2_websocket: bool,
}

impl ClientRequest {
    /// A bodyless request read by the lean loop (HTTP/1.1 or 1.0).
    pub fn plain(method: Method, uri: Uri, version: Version, fields: Fields) -> ClientRequest {
        ClientRequest {
            method,
            uri,
            version,
            fields,
            body: RequestBody::Empty,
            upgrade: None,
            h2_websocket: false,
        }
    }

    /// A request hyper read: its fields copied out of the `HeaderMap`.
    pub fn from_hyper(req: http::Request<Incoming>) -> ClientRequest {
        let (mut parts, body) = req.into_parts();
        // hyper hands `:protocol` over only when the connection enabled
        // extended CONNECT (`downstream::hyper_conn`), and only on h2.
        let h2_websocket = parts.method == http::Method::CONNECT
            && parts
                .extensions
                .get::<hyper::ext::Protocol>()
                .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        ClientRequest {
            h2_websocket,
            upgrade: parts.extensions.remove::<OnUpgrade>(),
            fields: Fields::from_header_map(&parts.headers),
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            body: RequestBody::Hyper(body),
        }
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }
}
