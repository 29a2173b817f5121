//! The deny path of origins: the allowed entry nearest to what was
//! presented, and a hint naming the difference (scheme, port, subdomain, a
//! trailing path), for the 403 body and the log line.

use super::default_port;
use super::{one_label_below, pattern_matches, Allowlist, Origin, Pattern, Presented};

/// The origins half of a 403: what was presented, what is allowed, the
/// nearest allowed entry and what differs from it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OriginDiff {
    pub presented: Option<String>,
    pub allowed: Vec<String>,
    pub nearest: Option<String>,
    pub hint: String,
}

/// Explain why `presented` is (or would be) refused by `allow`.
pub fn diff(presented: &Presented, allow: &Allowlist) -> OriginDiff {
    let allowed: Vec<String> = allow.patterns.iter().map(|p| p.to_string()).collect();
    let mut out = OriginDiff {
        presented: presented.display(),
        allowed,
        nearest: None,
        hint: String::new(),
    };
    if allow.allows(presented) {
        out.hint = "origin allowed".into();
        return out;
    }
    let origin = match presented {
        Presented::Absent => {
            out.hint = "no Origin header was sent; add 'none' to ORIGINS to allow clients without one (CLIs)".into();
            return out;
        }
        Presented::Null => {
            out.hint = "Origin 'null' comes from sandboxed or file:// pages and can never be allowed; serve the page from a real origin".into();
            return out;
        }
        Presented::Malformed { why, .. } => {
            out.hint = format!("the Origin header is not scheme://host[:port]: {why}");
            return out;
        }
        Presented::WithPath { origin, path } => {
            if let Some(p) = allow.patterns.iter().find(|p| pattern_matches(p, origin)) {
                out.nearest = Some(p.to_string());
                out.hint = format!(
                    "trailing path '{path}' must not be part of an Origin; '{origin}' alone is allowed"
                );
                return out;
            }
            origin
        }
        Presented::Valid(o) => o,
    };
    let best = allow
        .patterns
        .iter()
        .filter(|p| **p != Pattern::None)
        .map(|p| (compare(origin, p), p))
        .min_by_key(|((score, _), _)| *score);
    match best {
        Some(((_, hint), p)) => {
            out.nearest = Some(p.to_string());
            out.hint = hint;
        }
        None => {
            out.hint = "this member allows only clients without an Origin (ORIGINS=none); add this origin to ORIGINS if browsers should connect".into();
        }
    }
    out
}

/// Distance (lower = nearer) and a human hint naming the difference.
fn compare(o: &Origin, p: &Pattern) -> (usize, String) {
    let (scheme, port, host_hint, host_score) = match p {
        Pattern::None => unreachable!("filtered out by caller"),
        Pattern::Exact(a) => {
            let (hint, score) = host_difference(&o.host, &a.host);
            (&a.scheme, a.port, hint, score)
        }
        Pattern::Wildcard {
            scheme,
            suffix,
            port,
        } => {
            let (hint, score) = if one_label_below(&o.host, suffix).is_some() {
                (None, 0)
            } else if o.host == *suffix {
                (
                    Some(format!(
                        "subdomain missing: *.{suffix} does not match the bare domain {suffix}; add it explicitly"
                    )),
                    2,
                )
            } else if o.host.ends_with(&format!(".{suffix}")) {
                (
                    Some(format!(
                        "subdomain differs: *.{suffix} matches one label only, {} has more",
                        o.host
                    )),
                    2,
                )
            } else {
                host_difference(&o.host, suffix)
            };
            (scheme, *port, hint, score)
        }
    };
    let pseudo = Origin {
        scheme: scheme.clone(),
        host: o.host.clone(),
        port,
    };
    let mut parts = Vec::new();
    let mut score = host_score;
    if let Some(h) = host_hint {
        parts.push(h);
    }
    if *scheme != o.scheme {
        score += 1;
        parts.push(format!(
            "scheme differs: presented {}, allowed {}",
            o.scheme, scheme
        ));
    }
    // Both on their scheme's default port: the scheme note says it all.
    let both_default = o.port.is_none() && port.is_none();
    if !both_default && pseudo.effective_port() != o.effective_port() {
        score += 1;
        parts.push(format!(
            "port differs: presented {}, allowed {}",
            port_label(o),
            port_label(&pseudo)
        ));
    }
    if parts.is_empty() {
        parts.push("differs".into());
    }
    (score, parts.join("; "))
}

fn port_label(o: &Origin) -> String {
    match (o.port, default_port(&o.scheme)) {
        (Some(p), _) => p.to_string(),
        (None, Some(d)) => format!("{d} (default)"),
        (None, None) => "none".into(),
    }
}

fn host_difference(presented: &str, allowed: &str) -> (Option<String>, usize) {
    if presented == allowed {
        return (None, 0);
    }
    let parent = |h: &str| h.split_once('.').map(|(_, rest)| rest.to_string());
    let same_parent = parent(presented).is_some() && parent(presented) == parent(allowed);
    let nested =
        presented.ends_with(&format!(".{allowed}")) || allowed.ends_with(&format!(".{presented}"));
    let hint = if nested || same_parent {
        format!("subdomain differs: presented {presented}, allowed {allowed}")
    } else {
        format!("host differs: presented {presented}, allowed {allowed}")
    };
    (Some(hint), 4 + strsim::levenshtein(presented, allowed))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{allow, p};
    use super::*;

    #[test]
    fn hint_names_scheme_difference() {
        let d = diff(
            &p("http://app.example.com"),
            &allow(&["https://app.example.com", "none"]),
        );
        assert_eq!(d.nearest.as_deref(), Some("https://app.example.com"));
        assert!(
            d.hint
                .contains("scheme differs: presented http, allowed https"),
            "{}",
            d.hint
        );
    }

    #[test]
    fn hint_names_port_difference() {
        let d = diff(
            &p("https://app.example.com:8443"),
            &allow(&["https://app.example.com"]),
        );
        assert!(
            d.hint
                .contains("port differs: presented 8443, allowed 443 (default)"),
            "{}",
            d.hint
        );
    }

    #[test]
    fn hint_names_subdomain_difference_and_picks_nearest() {
        let d = diff(
            &p("https://staging.example.com"),
            &allow(&["https://other.org", "https://app.example.com"]),
        );
        assert_eq!(d.nearest.as_deref(), Some("https://app.example.com"));
        assert!(d.hint.starts_with("subdomain differs"), "{}", d.hint);
    }

    #[test]
    fn hint_names_wildcard_depth() {
        let d = diff(
            &p("https://a.b.example.com"),
            &allow(&["https://*.example.com"]),
        );
        assert!(d.hint.contains("one label only"), "{}", d.hint);
        let d = diff(
            &p("https://example.com"),
            &allow(&["https://*.example.com"]),
        );
        assert!(d.hint.contains("bare domain"), "{}", d.hint);
    }

    #[test]
    fn hint_names_trailing_path() {
        let d = diff(
            &p("https://app.example.com/"),
            &allow(&["https://app.example.com"]),
        );
        assert_eq!(d.presented.as_deref(), Some("https://app.example.com/"));
        assert!(d.hint.contains("trailing path '/'"), "{}", d.hint);
    }

    #[test]
    fn hint_for_missing_origin_and_cli_only_members() {
        let d = diff(&Presented::Absent, &allow(&["https://app.example.com"]));
        assert!(d.hint.contains("add 'none'"), "{}", d.hint);
        assert_eq!(d.presented, None);
        let d = diff(&p("https://app.example.com"), &allow(&["none"]));
        assert!(d.hint.contains("ORIGINS=none"), "{}", d.hint);
        assert_eq!(d.nearest, None);
    }

    #[test]
    fn hint_for_null_origin() {
        let d = diff(&p("null"), &allow(&["https://app.example.com"]));
        assert!(d.hint.contains("never be allowed"), "{}", d.hint);
    }
}
