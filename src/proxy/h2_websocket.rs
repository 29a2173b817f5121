//! WebSockets over HTTP/2 (RFC 8441) as the gateway's HTTP/1.1 upgrade:
//! the key clawgate makes for the gateway's RFC 6455 handshake (an h2
//! stream has none), the check of the gateway's accept, and the 101's
//! fields as the stream's 200 carries them.

use base64::Engine as _;

use crate::message::HeadFields;

/// RFC 6455 §1.3's GUID, appended to the key for the accept value.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (24 bytes).
pub struct Key([u8; 24]);

impl Key {
    pub fn new() -> Key {
        let mut raw = [0u8; 16];
        // The key is a nonce against caches, not a secret: should the
        // system's generator fail, a fixed key still opens the socket.
        let _ = getrandom::fill(&mut raw);
        let mut key = [0u8; 24];
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(raw, &mut key)
            .expect("16 bytes are 24 in base64");
        debug_assert_eq!(n, 24);
        Key(key)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Does the gateway's 101 carry this key's `Sec-WebSocket-Accept`?
    pub fn accepted_by(&self, fields: &HeadFields) -> bool {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&self.0);
        ctx.update(GUID);
        let expected = base64::engine::general_purpose::STANDARD.encode(ctx.finish());
        let mut accepts = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-accept"));
        matches!(
            (accepts.next(), accepts.next()),
            (Some((_, v)), None) if v.trim_ascii() == expected.as_bytes()
        )
    }
}

/// The 101's fields as an h2 200 opening the stream carries them:
/// without the handshake's own (`Connection`, `Upgrade`, the accept);
/// `Sec-WebSocket-Protocol` and `-Extensions` stay, as the client chose.
pub fn to_stream_response(fields: &mut HeadFields) {
    fields.retain(|name| {
        !(name.eq_ignore_ascii_case(b"connection")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"sec-websocket-accept"))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(lines: &str) -> HeadFields {
        HeadFields {
            lines: bytes::Bytes::copy_from_slice(lines.as_bytes()),
            ..HeadFields::default()
        }
    }

    #[test]
    fn rfc_6455_sample_key_is_accepted_and_others_are_not() {
        // RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" -> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        let key = Key(*b"dGhlIHNhbXBsZSBub25jZQ==");
        let ok = "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
        assert!(key.accepted_by(&fields(ok)));
        assert!(!key.accepted_by(&fields("sec-websocket-accept: x\r\n")));
        assert!(!key.accepted_by(&fields("")));
        assert!(!key.accepted_by(&fields(&format!("{ok}{ok}"))));
        assert!(!Key::new().accepted_by(&fields(ok)));
    }

    #[test]
    fn keys_are_fresh_base64_of_16_bytes() {
        let (a, b) = (Key::new(), Key::new());
        assert_ne!(a.as_bytes(), b.as_bytes());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.as_bytes())
            .unwrap();
        assert_eq!(raw.len(), 16);
    }

    #[test]
    fn the_stream_response_keeps_only_the_negotiated_fields() {
        let mut f = fields(
            "Upgrade: websocket\r\nSec-WebSocket-Accept: k\r\nsec-websocket-protocol: chat\r\nconnection: upgrade\r\n",
        );
        to_stream_response(&mut f);
        assert_eq!(&f.lines[..], b"sec-websocket-protocol: chat\r\n");
    }
}
