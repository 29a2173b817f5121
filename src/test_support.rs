//! Builders for unit tests: upstreams without files (members come from
//! `clawgate_policy::testing`).

use http::uri::{Authority, Scheme};
use http::HeaderValue;

use crate::config::Upstream;

pub fn upstream(name: &str, authority: &str) -> Upstream {
    Upstream {
        name: name.into(),
        url: format!("http://{authority}").parse().unwrap(),
        scheme: Scheme::HTTP,
        authority: authority.parse::<Authority>().unwrap(),
        host_header: HeaderValue::from_str(authority).unwrap(),
        identity_header: http::HeaderName::from_static("x-forwarded-user"),
    }
}
