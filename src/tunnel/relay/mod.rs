//! Byte relay for an upgraded connection, with just enough WebSocket
//! framing knowledge to end it politely.
//!
//! Bytes pass through untouched in both directions (OpenClaw signs its
//! connect frame). On the gateway-to-client side a [`FrameTracker`] follows
//! frame boundaries without buffering or altering anything, so when a
//! connection is revoked or the proxy drains, clawgate can insert one whole
//! close frame (1008 policy violation / 1001 going away) between two of
//! the gateway's frames instead of cutting one in half.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use self::pooled::read_pooled;

/// Follows WebSocket frame boundaries in one direction of a byte stream.
#[derive(Debug, Default)]
pub struct FrameTracker {
    header: [u8; 14],
    header_len: usize,
    remaining: u64,
    /// A close frame went by: the sender ended the WebSocket properly.
    saw_close: bool,
}

impl FrameTracker {
    /// Account for bytes that passed through.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            if let Some((total, payload)) = header_size(&self.header[..self.header_len]) {
                if self.header_len == total {
                    self.saw_close |= self.header[0] & 0x0f == 0x8;
                    self.remaining = payload;
                    self.header_len = 0;
                }
            }
        }
    }

    /// Between two frames: a frame may be inserted here.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.header_len == 0
    }

    /// Has a close frame gone by?
    pub fn saw_close(&self) -> bool {
        self.saw_close
    }
}

/// Header length and payload length, once enough header bytes are known.
fn header_size(h: &[u8]) -> Option<(usize, u64)> {
    if h.len() < 2 {
        return None;
    }
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    let (ext, short) = match h[1] & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let total = 2 + ext + mask;
    let payload = match short {
        Some(n) => n,
        None if h.len() >= 2 + ext => h[2..2 + ext]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        None => return None,
    };
    Some((total, payload))
}

/// A server-to-client close frame (unmasked) with a code and a reason
/// (truncated to the 123 bytes a control frame allows).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut r = reason.as_bytes();
    if r.len() > 123 {
        r = &r[..123];
    }
    let mut f = Vec::with_capacity(4 + r.len());
    f.push(0x88);
    f.push((2 + r.len()) as u8);
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(r);
    f
}

/// The same close frame as the gateway must receive it: client-to-server
/// frames are masked (RFC 6455 §5.3).
pub fn masked_close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut f = close_frame(code, reason);
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        key = [0x5a, 0xa5, 0x3c, 0xc3];
    }
    f[1] |= 0x80;
    let payload: Vec<u8> = f[2..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    f.truncate(2);
    f.extend_from_slice(&key);
    f.extend_from_slice(&payload);
    f
}

/// Why the relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// One side closed; bytes copied (client→upstream, upstream→client).
    Closed,
    /// Closed by clawgate with this reason code.
    Stopped(&'static str),
    /// The gateway dropped a WebSocket without a close frame while the
    /// client was still there and had not sent one either; the client got
    /// [`UPSTREAM_RESET`].
    UpstreamReset,
}

/// Close reason when the gateway drops a WebSocket (close code 1011).
pub const UPSTREAM_RESET: &str = "upstream_reset";

/// How long to wait for a frame boundary before cutting the connection.
const BOUNDARY_WAIT: Duration = Duration::from_secs(1);

/// Copy both ways until a side closes or `stop` resolves with a reason;
/// then, for WebSockets, send both sides a close frame with the code and
/// text `close` gives for the reason (each at a frame boundary of its
/// direction, never inside a frame).
pub async fn relay<C, U, S>(
    client: C,
    upstream: U,
    websocket: bool,
    stop: S,
    close: impl Fn(&'static str) -> (u16, String),
) -> (End, u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    S: std::future::Future<Output = &'static str>,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let up_bytes = std::sync::atomic::AtomicU64::new(0);
    let mut down_bytes = 0u64;
    let mut tracker = FrameTracker::default();
    // The client sent a close frame: the gateway may end the connection.
    let client_closing = std::sync::atomic::AtomicBool::new(false);
    // Set by the stop branch: the reason the gateway's side must close for.
    let stop_upstream = tokio::sync::Notify::new();
    let stop_reason = std::sync::Mutex::new(None::<&'static str>);

    let client_to_upstream = async {
        let mut client_frames = FrameTracker::default();
        loop {
            tokio::select! {
                r = read_pooled(&mut cr) => match r {
                    Err(_) => break,
                    Ok(chunk) if chunk.is_empty() => break,
                    Ok(chunk) => {
                        if websocket && !client_frames.saw_close() {
                            client_frames.feed(&chunk);
                            if client_frames.saw_close() {
                                client_closing.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        if uw.write_all(&chunk).await.is_err() {
                            break;
                        }
                        up_bytes.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                },
                _ = stop_upstream.notified() => {
                    let reason = stop_reason.lock().ok().and_then(|r| *r);
                    if let Some(reason) = reason {
                        if websocket && client_frames.at_boundary() && !client_frames.saw_close() {
                            let (code, text) = close(reason);
                            let _ = uw.write_all(&masked_close_frame(code, &text)).await;
                        }
                    }
                    break;
                }
            }
        }
        let _ = uw.shutdown().await;
    };
    tokio::pin!(client_to_upstream);
    tokio::pin!(stop);

    let mut client_done = false;
    let end = loop {
        tokio::select! {
            r = read_pooled(&mut ur) => match r.ok().filter(|chunk| !chunk.is_empty()) {
                None if websocket
                    && !client_done
                    && !tracker.saw_close()
                    && !client_closing.load(std::sync::atomic::Ordering::Relaxed) =>
                {
                    if tracker.at_boundary() {
                        let (code, text) = close(UPSTREAM_RESET);
                        let _ = cw.write_all(&close_frame(code, &text)).await;
                    }
                    break End::UpstreamReset;
                }
                None => break End::Closed,
                Some(chunk) => {
                    if websocket {
                        tracker.feed(&chunk);
                    }
                    if cw.write_all(&chunk).await.is_err() {
                        break End::Closed;
                    }
                    down_bytes += chunk.len() as u64;
                }
            },
            _ = &mut client_to_upstream, if !client_done => {
                client_done = true;
            }
            reason = &mut stop => {
                if websocket {
                    let deadline = tokio::time::Instant::now() + BOUNDARY_WAIT;
                    // Let the frame in flight finish, then insert ours.
                    while !tracker.at_boundary() {
                        match tokio::time::timeout_at(deadline, read_pooled(&mut ur)).await {
                            Ok(Ok(chunk)) if !chunk.is_empty() => {
                                tracker.feed(&chunk);
                                if cw.write_all(&chunk).await.is_err() {
                                    break;
                                }
                                down_bytes += chunk.len() as u64;
                            }
                            _ => break,
                        }
                    }
                    if tracker.at_boundary() {
                        let (code, text) = close(reason);
                        let _ = cw.write_all(&close_frame(code, &text)).await;
                    }
                }
                let _ = cw.flush().await;
                let _ = cw.shutdown().await;
                // Tell the gateway too, so it logs why instead of 1006.
                if !client_done {
                    if let Ok(mut r) = stop_reason.lock() {
                        *r = Some(reason);
                    }
                    stop_upstream.notify_one();
                    let _ = tokio::time::timeout(BOUNDARY_WAIT, &mut client_to_upstream).await;
                }
                break End::Stopped(reason);
            }
        }
    };
    if !matches!(end, End::Stopped(_)) {
        let _ = cw.shutdown().await;
    }
    (
        end,
        up_bytes.load(std::sync::atomic::Ordering::Relaxed),
        down_bytes,
    )
}

mod pooled;

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match payload_len {
            n if n < 126 => f.push(m | n as u8),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, payload_len));
        f
    }

    #[test]
    fn tracks_boundaries_across_arbitrary_chunking() {
        let mut stream = Vec::new();
        for (len, masked) in [
            (0, false),
            (5, false),
            (200, true),
            (70_000, false),
            (125, false),
        ] {
            stream.extend(frame(len, masked));
        }
        for chunk in [1usize, 2, 3, 7, 100, 4096] {
            let mut t = FrameTracker::default();
            for c in stream.chunks(chunk) {
                t.feed(c);
            }
            assert!(t.at_boundary(), "chunk size {chunk}");
        }
    }

    #[test]
    fn mid_frame_is_not_a_boundary() {
        let f = frame(300, false);
        let mut t = FrameTracker::default();
        t.feed(&f[..3]);
        assert!(!t.at_boundary());
        t.feed(&f[3..100]);
        assert!(!t.at_boundary());
        t.feed(&f[100..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn notices_a_close_frame_going_by() {
        let mut t = FrameTracker::default();
        t.feed(&frame(5, false));
        assert!(!t.saw_close());
        let close = close_frame(1000, "bye");
        t.feed(&close[..1]);
        assert!(!t.saw_close());
        t.feed(&close[1..]);
        assert!(t.saw_close() && t.at_boundary());
    }

    #[test]
    fn masked_close_frame_unmasks_to_the_same_payload() {
        let plain = close_frame(1008, "revoked");
        let masked = masked_close_frame(1008, "revoked");
        assert_eq!(masked[0], 0x88);
        assert_eq!(masked[1], 0x80 | plain[1]);
        let key = &masked[2..6];
        let unmasked: Vec<u8> = masked[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, plain[2..]);
    }

    #[tokio::test]
    async fn a_pending_read_holds_no_buffer_and_a_chunk_gives_its_back() {
        use std::future::Future;
        use tokio::io::AsyncWriteExt;

        let (mut a, mut b) = tokio::io::duplex(64);
        let spare = pooled::spare();
        {
            let read = read_pooled(&mut b);
            tokio::pin!(read);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(read.as_mut().poll(&mut cx).is_pending());
            // Nothing to read: the buffer went back while the read waits.
            assert_eq!(pooled::spare(), spare.max(1));
        }
        a.write_all(b"hello").await.unwrap();
        let chunk = read_pooled(&mut b).await.unwrap();
        assert_eq!(&*chunk, b"hello");
        assert_eq!(pooled::spare(), spare.max(1) - 1, "the chunk holds one");
        drop(chunk);
        assert_eq!(pooled::spare(), spare.max(1));
        drop(a);
        assert!(
            read_pooled(&mut b).await.unwrap().is_empty(),
            "end of stream"
        );
    }

    #[test]
    fn close_frame_carries_code_and_bounded_reason() {
        let f = close_frame(1008, "revoked");
        assert_eq!(f[0], 0x88);
        assert_eq!(f[1] as usize, 2 + 7);
        assert_eq!(u16::from_be_bytes([f[2], f[3]]), 1008);
        let long = close_frame(1001, &"x".repeat(500));
        assert_eq!(long.len(), 4 + 123);
    }
}
