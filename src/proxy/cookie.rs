//! The `Cookie` header: finding clawgate's session cookie, and the line
//! that goes upstream without it.

use std::borrow::Cow;

use crate::message::fields::{text, Fields};

/// The one `Cookie` line for the upstream: every `Cookie` field joined
/// with "; " (HTTP/2 sends one per cookie; RFC 9113 §8.2.3), without
/// clawgate's session cookie. `None` when nothing is left.
pub(super) fn upstream_line<'h>(fields: &'h Fields, session: &str) -> Option<Cow<'h, str>> {
    let mut values = fields.get_all("cookie");
    let first = values.next()?;
    let single = values.next().is_none();
    if let (true, Some(s)) = (single, text(first)) {
        if !s.contains(session) {
            return Some(Cow::Borrowed(s));
        }
    }
    let mut line = String::new();
    for v in fields.get_all("cookie") {
        // A non-ASCII Cookie field cannot be taken apart safely: dropped.
        let Some(s) = text(v) else { continue };
        for pair in s.split(';') {
            let pair = pair.trim();
            let key = pair.split_once('=').map(|(k, _)| k.trim()).unwrap_or(pair);
            if pair.is_empty() || key == session {
                continue;
            }
            if !line.is_empty() {
                line.push_str("; ");
            }
            line.push_str(pair);
        }
    }
    (!line.is_empty()).then_some(Cow::Owned(line))
}

/// Find a cookie's value in the `Cookie` headers.
pub fn cookie<'h>(fields: &'h Fields, name: &str) -> Option<&'h str> {
    fields
        .get_all("cookie")
        .filter_map(text)
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn cookie_lookup_finds_the_named_pair() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_static("a=1; clawgate_session=xyz"),
        );
        let f = Fields::from_header_map(&h);
        assert_eq!(cookie(&f, "clawgate_session"), Some("xyz"));
        assert_eq!(cookie(&f, "b"), None);
    }
}
