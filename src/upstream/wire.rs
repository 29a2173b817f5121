//! HTTP/1.1 on the wire to the gateway: how the lines of the request head
//! we write are laid out (RFC 9112), and which fields are hop-by-hop in
//! either direction.
//!
//! What goes into a request head is decided by `headers::write_request_head`;
//! the response head we parse is [`super::response_head`]'s.

use http::Method;

/// `METHOD target HTTP/1.1`, the first line of a request head.
pub fn request_line(out: &mut Vec<u8>, method: &Method, target: &str) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// One header line. `value` comes from a `HeaderValue` or a validated
/// config string, so it holds no CR or LF. Inlined: most names are
/// constants, which then cost no `memcpy` call of their own.
#[inline(always)]
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The empty line that ends a head.
pub fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

/// The hop-by-hop fields (RFC 9110 §7.6.1, and the old `Proxy-Connection`),
/// by name in any case: passed on in neither direction. Compared by length
/// first, since every request and response runs each name through this.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let is = |known: &[u8]| token_eq(name, known);
    match name.len() {
        2 => is(b"te"),
        7 => is(b"upgrade") || is(b"trailer"),
        10 => is(b"connection") || is(b"keep-alive"),
        16 => is(b"proxy-connection"),
        17 => is(b"transfer-encoding"),
        _ => false,
    }
}

/// Is the field name `name`, in any case, `known` (lower case letters,
/// digits and `-`)? Eight bytes at a time: `eq_ignore_ascii_case` lowers
/// both sides a byte at a time, and the response parser asked it a dozen
/// times per line.
///
/// `name` must be a token (RFC 9110 §5.6.2), as httparse and `HeaderName`
/// accept them. Then `| 0x20` is exact: it lowers a token's capitals, and
/// the only other bytes it could turn into a lower-case letter, a digit or
/// `-` are control characters (0x0D, 0x10–0x19), which no token has.
pub fn token_eq(name: &[u8], known: &[u8]) -> bool {
    debug_assert!(known
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-'));
    const LOWER: u64 = u64::from_ne_bytes([0x20; 8]);
    let n = name.len();
    if n != known.len() {
        return false;
    }
    if n < 8 {
        return name.iter().zip(known).all(|(a, b)| a | 0x20 == *b);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let mut at = 0;
    while at + 8 < n {
        if word(name, at) | LOWER != word(known, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words before if need be.
    word(name, n - 8) | LOWER == word(known, n - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_eq_is_eq_ignore_ascii_case_for_tokens() {
        let known: &[&[u8]] = &[
            b"te",
            b"date",
            b"upgrade",
            b"connection",
            b"content-type",
            b"x-request-id",
            b"content-length",
            b"transfer-encoding",
            b"x-a-rather-long-field-name-0123456789",
        ];
        // Same length as some `known`, every case, and near misses in
        // each position (tokens all: `~` and `^` differ only in bit 5).
        let mut names: Vec<Vec<u8>> = Vec::new();
        for k in known {
            names.push(k.to_vec());
            names.push(k.to_ascii_uppercase());
            for i in 0..k.len() {
                for b in [b'~', b'^', b'_', b'.', b'A', b'0', b'`', b'|'] {
                    let mut n = k.to_vec();
                    n[i] = b;
                    names.push(n);
                }
                let mut mixed = k.to_vec();
                mixed[i] = mixed[i].to_ascii_uppercase();
                names.push(mixed);
            }
        }
        names.push(Vec::new());
        for n in &names {
            for k in known {
                assert_eq!(
                    token_eq(n, k),
                    n.eq_ignore_ascii_case(k),
                    "{:?} vs {:?}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(k)
                );
            }
        }
    }

    #[test]
    fn hop_by_hop_names_in_any_case() {
        for n in [
            "TE",
            "Upgrade",
            "TRAILER",
            "Connection",
            "keep-alive",
            "Proxy-Connection",
            "Transfer-Encoding",
        ] {
            assert!(is_hop_by_hop(n.as_bytes()), "{n}");
        }
        for n in [
            "Tf",
            "Upgrades",
            "content-length",
            "x-request-id",
            "Keep-Alivf",
            "",
        ] {
            assert!(!is_hop_by_hop(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn request_head_is_origin_form_with_headers_in_order() {
        let mut out = Vec::new();
        request_line(&mut out, &Method::POST, "/v1?q=1");
        header(&mut out, b"host", b"gw:18789");
        header(&mut out, b"x-a", b"1");
        end_head(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1?q=1 HTTP/1.1\r\nhost: gw:18789\r\nx-a: 1\r\n\r\n"
        );
    }
}
