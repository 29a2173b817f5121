//! Origins (RFC 6454): what a browser presents, a member's allowlist, and
//! the explanation of a miss.
//!
//! Comparison is on the serialized origin `scheme://host[:port]`: scheme and
//! host lower-cased, the scheme's default port dropped. `https://*.x.com`
//! matches exactly one label, and `none` stands for clients that send no
//! `Origin` at all (CLIs). The deny path (`diff`) finds the allowed entry
//! nearest to what was presented and names the difference, so a 403 tells
//! the member what to fix instead of just "forbidden".

use std::fmt;

/// A serialized origin, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    /// `None` when the port is the scheme's default (or the scheme has none).
    pub port: Option<u16>,
}

impl Origin {
    fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(&self.scheme))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}://{}:{}", self.scheme, self.host, p),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// What the request carried in its `Origin` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    Absent,
    /// The opaque origin `null` (sandboxed iframes, `file://` pages).
    Null,
    Valid(Origin),
    /// Parsed, but followed by a path/query that no browser sends.
    WithPath {
        origin: Origin,
        path: String,
    },
    Malformed {
        raw: String,
        why: String,
    },
}

impl Presented {
    /// The header as it should be shown back (escaped, bounded).
    pub fn display(&self) -> Option<String> {
        match self {
            Presented::Absent => None,
            Presented::Null => Some("null".into()),
            Presented::Valid(o) => Some(o.to_string()),
            Presented::WithPath { origin, path } => Some(format!("{origin}{path}")),
            Presented::Malformed { raw, .. } => Some(raw.clone()),
        }
    }
}

/// Longest Origin value we try to make sense of; longer is malformed.
const MAX_ORIGIN_LEN: usize = 2048;

/// Parse a presented `Origin` header value.
pub fn parse_presented(raw: Option<&[u8]>) -> Presented {
    let Some(raw) = raw else {
        return Presented::Absent;
    };
    let shown = || printable(raw);
    if raw.len() > MAX_ORIGIN_LEN {
        return Presented::Malformed {
            raw: shown(),
            why: format!("longer than {MAX_ORIGIN_LEN} bytes"),
        };
    }
    let Ok(s) = std::str::from_utf8(raw) else {
        return Presented::Malformed {
            raw: shown(),
            why: "not valid UTF-8".into(),
        };
    };
    let s = s.trim();
    if s.eq_ignore_ascii_case("null") {
        return Presented::Null;
    }
    match split_origin(s) {
        Ok((origin, "")) => Presented::Valid(origin),
        Ok((origin, rest)) => Presented::WithPath {
            origin,
            path: rest.to_string(),
        },
        Err(why) => Presented::Malformed { raw: shown(), why },
    }
}

fn printable(raw: &[u8]) -> String {
    let cut = &raw[..raw.len().min(256)];
    let mut s: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if raw.len() > cut.len() {
        s.push('…');
    }
    s
}

/// Split `scheme://host[:port]` from whatever follows it.
fn split_origin(s: &str) -> Result<(Origin, &str), String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| "expected scheme://host[:port]".to_string())?;
    if scheme.is_empty()
        || !scheme.as_bytes()[0].is_ascii_alphabetic()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return Err(format!("invalid scheme '{}'", printable(scheme.as_bytes())));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("userinfo (user@) is not allowed in an Origin".into());
    }
    let (host, port) = split_host_port(authority)?;
    let scheme = scheme.to_ascii_lowercase();
    let port = match port {
        Some(p) if Some(p) == default_port(&scheme) => None,
        other => other,
    };
    Ok((Origin { scheme, host, port }, tail))
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.is_empty() {
        return Err("empty host".into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']').ok_or("unclosed '[' in IPv6 host")?;
        let inner = &rest[..close];
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("'{inner}' is not an IPv6 address"))?;
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("junk after ']'".into()),
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if !host.starts_with('[') {
        if host.is_empty() {
            return Err("empty host".into());
        }
        if let Some(bad) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.' || *c == '_'))
        {
            return Err(if bad.is_ascii() {
                format!("invalid character '{}' in host", bad.escape_default())
            } else {
                "non-ASCII host: browsers send IDNs as punycode (xn--...)".into()
            });
        }
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
                return Err(format!("invalid port '{}'", printable(p.as_bytes())));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("port {p} out of range"))?,
            )
        }
    };
    Ok((host, port))
}

/// A member's parsed `ORIGINS`.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    allow_none: bool,
    patterns: Vec<Pattern>,
    /// Serialized exact origins, for the byte-compare fast path.
    exact_serialized: Vec<Box<[u8]>>,
}

impl Allowlist {
    pub fn new(patterns: Vec<Pattern>) -> Self {
        let allow_none = patterns.contains(&Pattern::None);
        let exact_serialized = patterns
            .iter()
            .filter_map(|p| match p {
                Pattern::Exact(o) => Some(o.to_string().into_bytes().into_boxed_slice()),
                _ => None,
            })
            .collect();
        Allowlist {
            allow_none,
            patterns,
            exact_serialized,
        }
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Is this presented header value allowed? The common case (a browser's
    /// already-normalised origin, or no header from a CLI) needs no parsing.
    #[inline]
    pub fn allows_raw(&self, raw: Option<&[u8]>) -> bool {
        match raw {
            None => self.allow_none,
            Some(v) => {
                self.exact_serialized.iter().any(|e| **e == *v)
                    || self.allows(&parse_presented(Some(v)))
            }
        }
    }

    pub fn allows(&self, presented: &Presented) -> bool {
        match presented {
            Presented::Absent => self.allow_none,
            Presented::Valid(o) => self.patterns.iter().any(|p| pattern_matches(p, o)),
            _ => false,
        }
    }
}

mod diff;
mod pattern;
pub use diff::{diff, OriginDiff};
use pattern::{one_label_below, pattern_matches};
pub use pattern::{parse_pattern, Pattern};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn allow(list: &[&str]) -> Allowlist {
        Allowlist::new(list.iter().map(|s| parse_pattern(s).unwrap()).collect())
    }

    pub(crate) fn p(s: &str) -> Presented {
        parse_presented(Some(s.as_bytes()))
    }

    #[test]
    fn case_and_default_ports_are_normalised() {
        let a = allow(&["https://App.Example.com"]);
        assert!(a.allows_raw(Some(b"https://app.example.com")));
        assert!(a.allows_raw(Some(b"HTTPS://APP.EXAMPLE.COM:443")));
        assert!(!a.allows_raw(Some(b"https://app.example.com:8443")));
        assert!(!a.allows_raw(Some(b"http://app.example.com")));
    }

    #[test]
    fn non_default_ports_must_match_exactly() {
        let a = allow(&["http://127.0.0.1:3000"]);
        assert!(a.allows_raw(Some(b"http://127.0.0.1:3000")));
        assert!(!a.allows_raw(Some(b"http://127.0.0.1")));
        assert!(!a.allows_raw(Some(b"http://127.0.0.1:3001")));
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let a = allow(&["https://*.example.com"]);
        assert!(a.allows_raw(Some(b"https://a.example.com")));
        assert!(!a.allows_raw(Some(b"https://a.b.example.com")));
        assert!(!a.allows_raw(Some(b"https://example.com")));
        assert!(!a.allows_raw(Some(b"https://aexample.com")));
        assert!(!a.allows_raw(Some(b"http://a.example.com")));
    }

    #[test]
    fn none_allows_only_absent_origin() {
        let a = allow(&["none"]);
        assert!(a.allows_raw(None));
        assert!(!a.allows_raw(Some(b"null")));
        assert!(!allow(&["https://x.example.com"]).allows_raw(None));
    }

    #[test]
    fn hostile_values_are_malformed_not_allowed() {
        let a = allow(&["https://app.example.com"]);
        for bad in [
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.exam ple.com",
            "app.example.com",
            "https://app.éxample.com",
            "https://",
        ] {
            assert!(!a.allows_raw(Some(bad.as_bytes())), "{bad}");
            assert!(matches!(p(bad), Presented::Malformed { .. }), "{bad}");
        }
        let long = format!("https://{}.com", "a".repeat(5000));
        assert!(matches!(p(&long), Presented::Malformed { .. }));
    }

    #[test]
    fn trailing_dot_is_a_different_origin() {
        let a = allow(&["https://app.example.com"]);
        assert!(!a.allows_raw(Some(b"https://app.example.com.")));
    }

    #[test]
    fn ipv6_hosts_parse() {
        let a = allow(&["http://[::1]:8080"]);
        assert!(
            a.allows_raw(Some(b"http://[0:0::1]:8080")) || a.allows_raw(Some(b"http://[::1]:8080"))
        );
        assert!(a.allows_raw(Some(b"http://[::1]:8080")));
    }

    #[test]
    fn patterns_refuse_paths_stars_and_null() {
        assert!(parse_pattern("https://app.example.com/")
            .unwrap_err()
            .contains("trailing slash"));
        assert!(parse_pattern("*").unwrap_err().contains("every origin"));
        assert!(parse_pattern("https://*").is_err());
        assert!(parse_pattern("https://*.com")
            .unwrap_err()
            .contains("too broad"));
        assert!(parse_pattern("https://a*.example.com").is_err());
        assert!(parse_pattern("null").is_err());
    }
}
