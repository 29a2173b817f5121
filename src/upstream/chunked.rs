//! The chunked transfer coding of a response body (RFC 9112 §7.1),
//! decoded in place as bytes arrive, so an event stream's chunks reach
//! the client without being held back.

use bytes::{Bytes, BytesMut};

use super::response_head::HeadError;

/// The chunked transfer coding of a response body (RFC 9112 §7.1), one
/// step at a time over whatever bytes have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a `size[;ext]CRLF` line.
    Size,
    /// Inside a chunk, this many data bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// Longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes for the client.
    Data(Bytes),
    /// More input needed.
    NeedMore,
    /// The body ended.
    Done,
}

impl Chunked {
    /// Decode from the front of `buf` until data, the end, or a need for
    /// more input. Errors are malformed framing (the gateway's fault).
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, HeadError> {
        loop {
            match *self {
                Chunked::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = buf.split_to(used);
                        *self = if size == 0 {
                            Chunked::Trailers
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                        return Err(HeadError::Malformed)
                    }
                    Ok(httparse::Status::Partial) => return Ok(Step::NeedMore),
                    Err(_) => return Err(HeadError::Malformed),
                },
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let rest = left - take as u64;
                    *self = if rest == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(rest)
                    };
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(HeadError::Malformed);
                    }
                    let _ = buf.split_to(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => match buf.windows(2).position(|w| w == b"\r\n") {
                    // Trailer fields are dropped: nothing downstream uses them.
                    Some(0) => {
                        let _ = buf.split_to(2);
                        *self = Chunked::Done;
                    }
                    Some(at) => {
                        let _ = buf.split_to(at + 2);
                    }
                    None if buf.len() > MAX_TRAILERS => return Err(HeadError::Malformed),
                    None => return Ok(Step::NeedMore),
                },
                Chunked::Done => return Ok(Step::Done),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[&[u8]]) -> Result<(Vec<u8>, bool), HeadError> {
        let mut c = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input {
            buf.extend_from_slice(piece);
            loop {
                match c.step(&mut buf)? {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::NeedMore => break,
                    Step::Done => return Ok((out, buf.is_empty())),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";
        for cut in 0..wire.len() {
            let (out, done) = decode(&[&wire[..cut], &wire[cut..]]).unwrap();
            assert_eq!(out, b"hello world", "split at {cut}");
            assert!(done, "split at {cut}");
        }
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode(&bytewise).unwrap().0, b"hello world");
    }

    #[test]
    fn bad_chunked_framing_is_refused() {
        assert!(decode(&[b"zz\r\n"]).is_err());
        assert!(
            decode(&[b"2\r\nokXX"]).is_err(),
            "data not followed by CRLF"
        );
        assert!(decode(&[&[b'1'; MAX_CHUNK_LINE + 10]]).is_err());
        assert!(
            decode(&[b"ffffffffffffffffff\r\n"]).is_err(),
            "size overflow"
        );
    }
}
