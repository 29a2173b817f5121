//! The request target's path as the gateway will route on it.
//!
//! Every decision taken on the path (a `[[public]]` prefix, the
//! `/_clawgate/` session paths) must agree with where the gateway sends the
//! request. The gateway resolves the target with a WHATWG URL parser
//! (Node's), which removes dot segments, raw or percent-encoded in any case
//! (`..`, `.%2e`, `%2E%2e`), reads `\` as `/`, and takes a target starting
//! with `//` as an authority. A prefix match on the raw bytes would call
//! `/hooks/%2e%2e/admin` public and the gateway would serve `/admin`.
//!
//! Rather than resolve such paths (and forward a target the client did not
//! send), clawgate refuses them with 400 `bad_path`: no client has a reason
//! to send a dot segment, a backslash, an encoded slash or a control byte
//! in a path, and a refusal leaves nothing for the two parsers to disagree
//! on. The query is not looked at: dot segments only mean something in the
//! path.
//!
//! Percent-encoded unreserved characters (`/%68ooks/x`) are another
//! spelling of the same URI (RFC 3986 §6.2.2.2) that the gateway does not
//! decode before routing. Deciding on the raw path would leave the two
//! sides free to differ; refusing them would break clients whose encoders
//! escape more than needed (Java's `URLEncoder` writes `~` as `%7E`). So
//! they are decoded, and the decoded target is both decided on and
//! forwarded ([`decode_unreserved`]): what clawgate matched is what the
//! gateway gets. Other escapes stay as sent (`%25` is data; decoding it
//! could make a new escape).

use http::uri::{Parts, PathAndQuery};
use http::Uri;

/// The one reason code for every path refused here.
pub const BAD_PATH: &str = "bad_path";

/// Refuse a path the gateway could read differently from a prefix match:
/// a dot segment (`.`, `..`, any of them percent-encoded, also before a
/// `;` parameter), a backslash (raw or `%5c`), an encoded slash (`%2f`), a
/// control byte (raw or `%00`–`%1f`, `%7f`), or a leading `//`.
///
/// One pass over the bytes, no allocation.
#[inline]
pub fn check(path: &str) -> Result<(), &'static str> {
    let p = path.as_bytes();
    if p.starts_with(b"//") {
        return Err(BAD_PATH);
    }
    // Dots in the current segment so far, or `None` once it holds
    // anything else (or before the first `/`).
    let mut dots: Option<u8> = None;
    let mut i = 0;
    while i < p.len() {
        let (b, encoded) = match p[i] {
            b'%' => match escape(p, i) {
                Some(v) => {
                    i += 2;
                    (v, true)
                }
                // Not an escape: Node keeps a lone `%` as it is.
                None => (b'%', false),
            },
            b => (b, false),
        };
        i += 1;
        match b {
            0..=0x1f | 0x7f | b'\\' => return Err(BAD_PATH),
            b'/' if encoded => return Err(BAD_PATH),
            // A segment ends at `/`; a `;` starts its parameters, which
            // some servers strip before resolving (`..;/`).
            b'/' | b';' if !encoded => {
                if matches!(dots, Some(1 | 2)) {
                    return Err(BAD_PATH);
                }
                dots = (b == b'/').then_some(0);
            }
            b'.' => dots = dots.map(|n| n.saturating_add(1)),
            _ => dots = None,
        }
    }
    if matches!(dots, Some(1 | 2)) {
        return Err(BAD_PATH);
    }
    Ok(())
}

/// `uri` with the percent-encoded unreserved characters of its path
/// decoded (`%68` → `h`, `%7E` → `~`), or `None` when it has none (the
/// usual case: one scan, no allocation). Scheme, authority and query are
/// kept as they are.
pub fn decode_unreserved(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let p = path.as_bytes();
    if !p.contains(&b'%') || !has_encoded_unreserved(path) {
        return None;
    }
    let mut out = String::with_capacity(uri.path_and_query().map_or(0, |pq| pq.as_str().len()));
    let mut i = 0;
    while i < p.len() {
        match escape(p, i).filter(|&v| is_unreserved(v)) {
            Some(v) => {
                out.push(char::from(v));
                i += 3;
            }
            None => {
                // Copy up to the next `%` whole (keeps UTF-8 intact).
                let next = p[i + 1..]
                    .iter()
                    .position(|&b| b == b'%')
                    .map_or(p.len(), |n| i + 1 + n);
                out.push_str(&path[i..next]);
                i = next;
            }
        }
    }
    if let Some(q) = uri.query() {
        out.push('?');
        out.push_str(q);
    }
    let mut parts = Parts::from(uri.clone());
    parts.path_and_query = Some(PathAndQuery::try_from(out).ok()?);
    Uri::from_parts(parts).ok()
}

/// Whether `path` spells an unreserved character as an escape.
pub fn has_encoded_unreserved(path: &str) -> bool {
    let p = path.as_bytes();
    (0..p.len()).any(|i| escape(p, i).is_some_and(is_unreserved))
}

/// The byte `%XX` at `p[i]` stands for, if it is one.
#[inline]
fn escape(p: &[u8], i: usize) -> Option<u8> {
    if p.get(i) != Some(&b'%') {
        return None;
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let (h, l) = (hex(*p.get(i + 1)?)?, hex(*p.get(i + 2)?)?);
    Some((h * 16 + l) as u8)
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_dot_segment_is_refused() {
        for p in [
            "/hooks/../admin",
            "/hooks/./admin",
            "/hooks/..",
            "/hooks/.",
            "/..",
            "/.",
            "/hooks/%2e%2e/admin",
            "/hooks/%2E%2E/admin",
            "/hooks/%2e%2E/admin",
            "/hooks/.%2e/admin",
            "/hooks/%2e./admin",
            "/hooks/.%2E",
            "/hooks/%2e/admin",
            "/hooks/..;/admin",
            "/hooks/..;x=1/admin",
            "/hooks/.;/admin",
            "/hooks//../admin",
        ] {
            assert_eq!(check(p), Err(BAD_PATH), "{p}");
        }
    }

    #[test]
    fn backslashes_encoded_slashes_and_control_bytes_are_refused() {
        for p in [
            "/hooks\\..\\admin",
            "/hooks/a\\b",
            "/hooks/%5c",
            "/hooks/%5C..%5Cadmin",
            "/hooks%2f..%2fadmin",
            "/hooks/%2F",
            "/hooks/%00",
            "/hooks/a%0d%0aX: y",
            "/hooks/%1F",
            "/hooks/%7f",
            "/hooks/a\tb",
            "/hooks/\0",
            "/hooks/\x7f",
            "//admin",
            "//evil.example/hooks/x",
        ] {
            assert_eq!(check(p), Err(BAD_PATH), "{p:?}");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for p in [
            "/",
            "/hooks/github",
            "/hooks/a.b",
            "/hooks/..foo",
            "/hooks/foo..",
            "/hooks/.well-known/x",
            "/hooks/...",
            "/hooks/.../x",
            "/hooks/%2e%2e%2e",
            "/hooks/a;b=../c",
            "/hooks//x",
            "/hooks/",
            "/hooks/%20x",
            "/hooks/%25",
            "/hooks/%252e%252e/x",
            "/hooks/100%",
            "/hooks/%zz",
            "/hooks/%2",
            "/hooks/caf\u{e9}",
            "/_clawgate/login",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    fn decoded(target: &str) -> Option<String> {
        let uri: Uri = target.parse().unwrap();
        decode_unreserved(&uri).map(|u| u.to_string())
    }

    #[test]
    fn unreserved_escapes_are_decoded_in_the_path_only() {
        assert_eq!(decoded("/%68ooks/x").as_deref(), Some("/hooks/x"));
        assert_eq!(decoded("/hook%73/%7E%7e").as_deref(), Some("/hooks/~~"));
        assert_eq!(
            decoded("/%5F%2D%2E%41z?q=%68").as_deref(),
            Some("/_-.Az?q=%68"),
            "the query is kept as sent"
        );
        assert_eq!(
            decoded("/%68/%20%2F%25%3b%zz%").as_deref(),
            Some("/h/%20%2F%25%3b%zz%"),
            "reserved and invalid escapes are kept"
        );
        assert_eq!(decoded("/caf\u{e9}/%61").as_deref(), Some("/caf\u{e9}/a"));
        assert_eq!(
            decoded("http://gw.example/%5fclawgate/login").as_deref(),
            Some("http://gw.example/_clawgate/login"),
            "an h2 target keeps its scheme and authority"
        );
    }

    #[test]
    fn paths_without_unreserved_escapes_are_left_alone() {
        for t in ["/", "/hooks/x", "/a%20b", "/a?q=%68", "/%2f", "/%"] {
            assert_eq!(decoded(t), None, "{t}");
        }
    }

    #[test]
    fn decoding_then_checking_refuses_encoded_dots_too() {
        let uri: Uri = "/hooks/%2E%2e/admin".parse().unwrap();
        let uri = decode_unreserved(&uri).unwrap();
        assert_eq!(uri.path(), "/hooks/../admin");
        assert_eq!(check(uri.path()), Err(BAD_PATH));
    }
}
