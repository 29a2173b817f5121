//! A tokio `TcpStream` whose reads and writes are `recv(2)` and `send(2)`
//! made directly (rustix's raw Linux system calls), not through glibc.
//!
//! glibc's `send` and `recv` are thread-cancellation points: in a process
//! with more than one thread (clawgate on several cores, or on one while
//! a log writer or a blocking job runs) each call switches the thread's
//! cancellation state on and off around the system call, two atomic
//! compare-and-swaps per call, and a proxied request makes four such
//! calls. clawgate never cancels threads, so it has no use for them.
//!
//! Readiness stays tokio's: every call goes through `TcpStream::try_io`,
//! which clears the readiness the reactor recorded when the kernel says
//! `EWOULDBLOCK`, exactly as tokio's own reads and writes do.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use rustix::net::{RecvFlags, SendFlags, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Reads land here first: a read buffer handed down by `AsyncRead` may be
/// uninitialised, which safe code cannot give the kernel, so the bytes are
/// received into this initialised one and copied (a request head is a few
/// hundred bytes; the copy is a fraction of the system call).
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

pub struct RawTcp {
    stream: TcpStream,
}

impl RawTcp {
    pub fn new(stream: TcpStream) -> RawTcp {
        RawTcp { stream }
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// One `recv` into `buf` if the reactor says there may be bytes;
    /// `WouldBlock` (and readiness cleared) if there are none.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream
            .try_io(Interest::READABLE, || recv(&self.stream, buf))
    }
}

/// One `recv` of up to `want` bytes into `into` through `try_io`.
fn recv_short_clears(stream: &TcpStream, into: &mut [u8], want: usize) -> io::Result<usize> {
    let into = &mut into[..want];
    try_io_short_clears(stream, Interest::READABLE, want, || recv(stream, into))
}

/// `op` (a `recv` or `send` of up to `want` bytes) through `try_io`. Fewer
/// bytes than asked for means the socket is drained (or its send buffer
/// full): answering WouldBlock to `try_io` clears the readiness now, as
/// tokio's own reads and writes do after a short one, so the next call
/// waits for the reactor instead of costing a system call that fails with
/// EAGAIN (otherwise one per request). The bytes moved are
/// still returned.
fn try_io_short_clears(
    stream: &TcpStream,
    interest: Interest,
    want: usize,
    mut op: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut short = None;
    let r = stream.try_io(interest, || {
        let n = op()?;
        if n > 0 && n < want {
            short = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => r,
    }
}

fn recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    rustix::net::recv(stream.as_fd(), buf, RecvFlags::empty())
        .map(|(_, n)| n)
        .map_err(io::Error::from)
}

impl AsyncRead for RawTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &self.get_mut().stream;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // A buffer initialised all through (a relay's) takes the bytes
        // directly; an uninitialised one (a `BytesMut`'s spare capacity)
        // gets them through the scratch buffer.
        let direct = buf.initialized().len() == buf.capacity();
        loop {
            ready!(stream.poll_read_ready(cx))?;
            if direct {
                let want = buf.remaining();
                match recv_short_clears(stream, buf.initialize_unfilled(), want) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let read: io::Result<usize> = SCRATCH_BUF.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let want = buf.remaining().min(scratch.len());
                let n = recv_short_clears(stream, &mut scratch[..want], want)?;
                buf.put_slice(&scratch[..n]);
                Ok(n)
            });
            match read {
                Ok(_) => return Poll::Ready(Ok(())),
                // Readiness was cleared: wait for the next edge.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for RawTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = &self.get_mut().stream;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            let sent = try_io_short_clears(stream, Interest::WRITABLE, buf.len(), || {
                // No SIGPIPE for a peer that closed: an EPIPE error instead.
                Ok(rustix::net::send(stream.as_fd(), buf, SendFlags::NOSIGNAL)?)
            });
            match sent {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = rustix::net::shutdown(self.stream.as_fd(), Shutdown::Write);
        Poll::Ready(r.map_err(io::Error::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (RawTcp, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (RawTcp::new(c), s)
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_shutdown_ends_the_peers_read() {
        let (mut raw, mut peer) = pair().await;
        raw.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        // More than one scratch buffer's worth, in both directions.
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let send = big.clone();
        let writer = tokio::spawn(async move {
            peer.write_all(&send).await.unwrap();
            peer
        });
        // Half into an initialised buffer (read directly), half into a
        // `BytesMut`'s uninitialised spare capacity (through the scratch).
        let mut back = vec![0u8; big.len() / 2];
        raw.read_exact(&mut back).await.unwrap();
        let mut rest = bytes::BytesMut::with_capacity(4096);
        while back.len() + rest.len() < big.len() {
            assert!(raw.read_buf(&mut rest).await.unwrap() > 0);
        }
        back.extend_from_slice(&rest);
        assert_eq!(back, big);
        let mut peer = writer.await.unwrap();
        raw.shutdown().await.unwrap();
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the peer sees the end of the stream");
    }

    #[tokio::test]
    async fn try_read_would_block_on_a_quiet_socket_and_reads_what_came() {
        let (raw, mut peer) = pair().await;
        let mut probe = [0u8; 1];
        let e = raw.try_read(&mut probe).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        peer.write_all(b"x").await.unwrap();
        raw.get_ref().readable().await.unwrap();
        assert_eq!(raw.try_read(&mut probe).unwrap(), 1);
        assert_eq!(&probe, b"x");
        drop(peer);
        raw.get_ref().readable().await.unwrap();
        assert_eq!(raw.try_read(&mut probe).unwrap(), 0, "end of stream");
    }

    #[tokio::test]
    async fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (mut raw, peer) = pair().await;
        drop(peer);
        let chunk = vec![0u8; 64 * 1024];
        let mut failed = false;
        for _ in 0..64 {
            if raw.write_all(&chunk).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to a closed peer fail (EPIPE/ECONNRESET)");
    }
}
