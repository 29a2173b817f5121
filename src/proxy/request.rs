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
}

impl ClientRequest {
    /// A bodyless request read by the lean loop.
    pub fn plain(method: Method, uri: Uri, fields: Fields) -> ClientRequest {
        ClientRequest {
            method,
            uri,
            version: Version::HTTP_11,
            fields,
            body: RequestBody::Empty,
            upgrade: None,
        }
    }

    /// A request hyper read: its fields copied out of the `HeaderMap`.
    pub fn from_hyper(req: http::Request<Incoming>) -> ClientRequest {
        let (mut parts, body) = req.into_parts();
        ClientRequest {
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
