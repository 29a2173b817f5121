//! A member's `ORIGINS` entries: parsed once at load (the error says how
//! to fix one), matched against a presented origin on the request path.

use std::fmt;

use super::{split_origin, Origin};

/// One entry of a member's `ORIGINS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `none`: no `Origin` header (CLI clients).
    None,
    Exact(Origin),
    /// `scheme://*.suffix[:port]`: exactly one label before `.suffix`.
    Wildcard {
        scheme: String,
        /// Without the leading dot: `example.com`.
        suffix: String,
        port: Option<u16>,
    },
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::None => f.write_str("none"),
            Pattern::Exact(o) => o.fmt(f),
            Pattern::Wildcard {
                scheme,
                suffix,
                port: Some(p),
            } => write!(f, "{scheme}://*.{suffix}:{p}"),
            Pattern::Wildcard {
                scheme,
                suffix,
                port: None,
            } => write!(f, "{scheme}://*.{suffix}"),
        }
    }
}

/// Parse one configured `ORIGINS` entry; the error says how to fix it.
pub fn parse_pattern(s: &str) -> Result<Pattern, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Pattern::None);
    }
    if s == "*" || s.ends_with("://*") {
        return Err(format!(
            "'{s}' would allow every origin; list the origins your browsers use"
        ));
    }
    if s.eq_ignore_ascii_case("null") {
        return Err("'null' (opaque origins) cannot be allowed; use 'none' for CLI clients".into());
    }
    let substituted = s.replacen("://*.", "://wildcard-label.", 1);
    let (origin, tail) = split_origin(&substituted).map_err(|why| format!("'{s}': {why}"))?;
    if !tail.is_empty() {
        return Err(format!(
            "'{s}' has a path or trailing slash ('{tail}'); an origin is scheme://host[:port] only"
        ));
    }
    if s.contains("://*.") {
        let suffix = origin
            .host
            .strip_prefix("wildcard-label.")
            .unwrap_or(&origin.host)
            .to_string();
        if !suffix.contains('.') {
            return Err(format!(
                "'{s}' is too broad: a wildcard needs at least two labels after '*.' (e.g. https://*.example.com)"
            ));
        }
        return Ok(Pattern::Wildcard {
            scheme: origin.scheme,
            suffix,
            port: origin.port,
        });
    }
    if s.contains('*') {
        return Err(format!(
            "'{s}': '*' is only allowed as the whole first label (https://*.example.com)"
        ));
    }
    Ok(Pattern::Exact(origin))
}

pub(super) fn pattern_matches(p: &Pattern, o: &Origin) -> bool {
    match p {
        Pattern::None => false,
        Pattern::Exact(a) => a == o,
        Pattern::Wildcard {
            scheme,
            suffix,
            port,
        } => *scheme == o.scheme && *port == o.port && one_label_below(&o.host, suffix).is_some(),
    }
}

/// `a.example.com` below `example.com` → `Some("a")`; deeper or equal → None.
pub(super) fn one_label_below<'h>(host: &'h str, suffix: &str) -> Option<&'h str> {
    let label = host.strip_suffix(suffix)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}
