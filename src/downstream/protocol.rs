//! Which HTTP a client connection speaks, settled once at accept by `net`
//! and served accordingly here.

/// The HTTP a client connection speaks, settled at accept: by ALPN on
/// TLS, else by whether the first bytes are the h2 connection preface
/// (RFC 9113 §3.4, "prior knowledge").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    H2,
}

/// The client connection preface of h2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Protocol {
    /// What `first` (the bytes read so far) says, or `None` while they
    /// are a proper beginning of the h2 preface and more must be read.
    pub fn sniff(first: &[u8]) -> Option<Protocol> {
        let n = first.len().min(H2_PREFACE.len());
        if first[..n] != H2_PREFACE[..n] {
            Some(Protocol::Http1)
        } else if n == H2_PREFACE.len() {
            Some(Protocol::H2)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn the_preface_is_h2_anything_else_http1_and_a_piece_of_it_undecided() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04";
        assert_eq!(Protocol::sniff(preface), Some(Protocol::H2));
        assert_eq!(Protocol::sniff(&preface[..24]), Some(Protocol::H2));
        assert_eq!(Protocol::sniff(&preface[..10]), None);
        assert_eq!(Protocol::sniff(b""), None);
        assert_eq!(
            Protocol::sniff(b"GET / HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(
            Protocol::sniff(b"PRI * HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
    }
}
