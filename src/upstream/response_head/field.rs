//! A response field as the head's parser judges it: the kind of its name
//! (found once per line), and the values that decide the body's framing
//! and the connection's reuse (`Content-Length`, `Transfer-Encoding`,
//! `Connection`).

use crate::upstream::wire::token_eq;

const REQUEST_ID: &[u8] = crate::request_id::HEADER.as_bytes();

/// What the parser needs to know of a response field's name, judged once
/// per line: each `eq_ignore_ascii_case` against a name of the same
/// length lowers both a byte at a time, and every line met a dozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Other,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    /// Hop-by-hop, and nothing else to know: `TE`, `Trailer`,
    /// `Keep-Alive`, `Proxy-Connection`.
    OtherHopByHop,
    RequestId,
    Date,
    ContentType,
    SetCookie,
}

impl Kind {
    /// By length first: most names are none of these, and have a length
    /// none of these has.
    pub(super) fn of(name: &[u8]) -> Kind {
        let is = |known: &[u8]| token_eq(name, known);
        match name.len() {
            2 if is(b"te") => Kind::OtherHopByHop,
            4 if is(b"date") => Kind::Date,
            7 if is(b"upgrade") => Kind::Upgrade,
            7 if is(b"trailer") => Kind::OtherHopByHop,
            10 if is(b"connection") => Kind::Connection,
            10 if is(b"keep-alive") => Kind::OtherHopByHop,
            10 if is(b"set-cookie") => Kind::SetCookie,
            12 if is(b"content-type") => Kind::ContentType,
            12 if is(REQUEST_ID) => Kind::RequestId,
            14 if is(b"content-length") => Kind::ContentLength,
            16 if is(b"proxy-connection") => Kind::OtherHopByHop,
            17 if is(b"transfer-encoding") => Kind::TransferEncoding,
            _ => Kind::Other,
        }
    }

    /// The same set as [`crate::upstream::wire::is_hop_by_hop`] (a
    /// test holds them to it).
    pub(super) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Kind::Connection | Kind::Upgrade | Kind::TransferEncoding | Kind::OtherHopByHop
        )
    }
}

/// Whether a `Connection` header names `name` (hop-by-hop by declaration;
/// the usual tokens name nothing beyond the hop-by-hop set).
pub(super) fn listed(headers: &[httparse::Header<'_>], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| t.eq_ignore_ascii_case(name))
}

/// Whether a `Set-Cookie` value sets the cookie `name` (RFC 6265 §5.2:
/// the name is what precedes the first `=` of the first `;`-part,
/// trimmed; names are case-sensitive).
pub(super) fn sets_cookie(raw: &[u8], name: &[u8]) -> bool {
    let pair = raw.split(|&b| b == b';').next().unwrap_or_default();
    pair.iter()
        .position(|&b| b == b'=')
        .is_some_and(|eq| pair[..eq].trim_ascii() == name)
}

/// `Content-Length`: 1*DIGIT, also as a list of equal values (§6.3 item 5).
pub(super) fn parse_length(raw: &[u8]) -> Option<u64> {
    let mut found: Option<u64> = None;
    for part in raw.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

pub(super) fn last_token_is(raw: &[u8], token: &[u8]) -> bool {
    raw.rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// (`close` listed, `keep-alive` listed, nothing else listed).
pub(super) fn connection_tokens(raw: &[u8]) -> (bool, bool, bool) {
    let (mut close, mut keep_alive, mut only_plain) = (false, false, true);
    for t in raw.split(|&b| b == b',') {
        let t = t.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            keep_alive = true;
        } else if !t.is_empty() {
            only_plain = false;
        }
    }
    (close, keep_alive, only_plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_kind_is_what_eq_ignore_ascii_case_says() {
        let names = [
            "TE",
            "te",
            "Date",
            "DATE",
            "Upgrade",
            "Trailer",
            "Connection",
            "Keep-Alive",
            "Content-Type",
            "X-Request-Id",
            "x-request-iD",
            "Content-Length",
            "Proxy-Connection",
            "Transfer-Encoding",
            "Server",
            "Content-Lengti",
            "X-Request-Ie",
            "Datf",
            "Set-Cookie",
            "set-cookiE",
            "Set-Cookif",
            "Upgradf",
            "Connectioo",
            "",
        ];
        for n in names {
            let kind = Kind::of(n.as_bytes());
            assert_eq!(
                kind.is_hop_by_hop(),
                crate::upstream::wire::is_hop_by_hop(n.as_bytes()),
                "{n}"
            );
            let expect = [
                ("content-length", Kind::ContentLength),
                ("transfer-encoding", Kind::TransferEncoding),
                ("connection", Kind::Connection),
                ("upgrade", Kind::Upgrade),
                ("te", Kind::OtherHopByHop),
                ("trailer", Kind::OtherHopByHop),
                ("keep-alive", Kind::OtherHopByHop),
                ("proxy-connection", Kind::OtherHopByHop),
                ("x-request-id", Kind::RequestId),
                ("date", Kind::Date),
                ("content-type", Kind::ContentType),
                ("set-cookie", Kind::SetCookie),
            ]
            .into_iter()
            .find(|(k, _)| n.eq_ignore_ascii_case(k))
            .map_or(Kind::Other, |(_, kind)| kind);
            assert_eq!(kind, expect, "{n}");
        }
    }

    #[test]
    fn only_the_named_cookie_is_recognised() {
        let session = b"clawgate_session";
        for set in [
            "clawgate_session=forged",
            "clawgate_session=; Path=/; Max-Age=0",
            " clawgate_session =x; Path=/chat",
            "clawgate_session=a=b",
        ] {
            assert!(sets_cookie(set.as_bytes(), session), "{set}");
        }
        for set in [
            "theme=dark",
            "theme=clawgate_session=x",
            "Clawgate_Session=x",
            "__Host-clawgate_session=x",
            "clawgate_session",
            "theme=dark; clawgate_session=x",
            "",
        ] {
            assert!(!sets_cookie(set.as_bytes(), session), "{set}");
        }
    }
}
