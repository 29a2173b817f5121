//! `[upstreams.*]`: each gateway clawgate forwards to, by name.

use http::header::HeaderName;
use http::uri::Scheme;
use http::{HeaderValue, Uri};

use super::cx::Cx;
use super::{raw, ConfigError, Upstream, DEFAULT_IDENTITY_HEADER};

/// `[upstreams.*]`: at least one.
pub(super) fn build(
    cx: &Cx<'_>,
    upstreams: std::collections::BTreeMap<String, raw::RawUpstream>,
) -> Result<Vec<Upstream>, ConfigError> {
    if upstreams.is_empty() {
        return Err(cx.key_err(
            "upstreams",
            "no upstream: add [upstreams.prod] url = \"http://127.0.0.1:18789\"".into(),
        ));
    }
    let upstreams = upstreams
        .into_iter()
        .map(|(name, u)| upstream(cx, name, u))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(upstreams)
}

/// The index of the upstream named `name` (at `key`), or an error listing them.
pub(super) fn index(
    cx: &Cx<'_>,
    upstreams: &[Upstream],
    name: &str,
    key: &str,
) -> Result<usize, ConfigError> {
    upstreams
        .iter()
        .position(|u| u.name == name)
        .ok_or_else(|| {
            let defined: Vec<_> = upstreams.iter().map(|u| u.name.as_str()).collect();
            cx.key_err(
                key,
                format!(
                    "no upstream named '{name}'; defined: {}",
                    defined.join(", ")
                ),
            )
        })
}

fn upstream(cx: &Cx<'_>, name: String, u: raw::RawUpstream) -> Result<Upstream, ConfigError> {
    let raw::RawUpstream {
        url,
        identity_header,
    } = u;
    let key = format!("upstreams.{name}.url");
    let uri: Uri = url.parse().map_err(|_| {
        cx.key_err(
            &key,
            format!("'{url}' is not a URL (e.g. http://127.0.0.1:18789)"),
        )
    })?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| cx.key_err(&key, format!("'{url}' needs a scheme: http://HOST:PORT")))?;
    if scheme != Scheme::HTTP {
        return Err(cx.key_err(
            &key,
            format!(
                "'{url}': only http:// upstreams are supported (the gateway listens on loopback)"
            ),
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| cx.key_err(&key, format!("'{url}' has no host")))?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(cx.key_err(
            &key,
            format!("'{url}' has a path; an upstream is scheme://host:port only"),
        ));
    }
    let identity_header = identity_header.unwrap_or_else(|| DEFAULT_IDENTITY_HEADER.into());
    let identity_header = HeaderName::from_bytes(identity_header.as_bytes()).map_err(|_| {
        cx.key_err(
            &format!("upstreams.{name}.identity_header"),
            format!("'{identity_header}' is not a header name"),
        )
    })?;
    Ok(Upstream {
        host_header: HeaderValue::from_str(authority.as_str())
            .map_err(|_| cx.key_err(&key, "host is not a valid header value".into()))?,
        name,
        url: uri,
        scheme,
        authority,
        identity_header,
    })
}
