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
/// config string, so it holds no CR or LF.
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
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
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"trailer"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
