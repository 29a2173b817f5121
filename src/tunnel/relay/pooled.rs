//! Relay buffers lent per read. An idle tunnel holds none: a read takes a
//! buffer from its thread's pool only while it is being polled and gives
//! it back when the socket has nothing (`poll_read` never keeps the buffer
//! across `Pending`), so only tunnels with bytes in flight hold one. A
//! buffer per direction held for the tunnel's life would be most of an
//! idle WebSocket's memory.

use std::future::Future;
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};

use crate::spare::{self, Spares};

/// Bytes per read: small, as most WebSocket messages are.
const BUF: usize = 4096;

thread_local! {
    /// As many as reads completing at once. Kept at their full length
    /// (initialised), so a read can hand them to the kernel directly.
    static SPARE: Spares<Vec<u8>> = const { Spares::new(64) };
}

fn take() -> Vec<u8> {
    spare::take(&SPARE).unwrap_or_else(|| vec![0; BUF])
}

fn give_back(buf: Vec<u8>) {
    spare::give_back(&SPARE, buf);
}

/// What one read returned (empty at end of stream), in a lent buffer
/// that goes back to the pool when dropped.
pub struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

/// One read, with a buffer held only while bytes are ready.
/// Cancel-safe like `AsyncReadExt::read`: nothing is read unless it
/// completes.
pub fn read_pooled<R: AsyncRead + Unpin>(
    r: &mut R,
) -> impl Future<Output = io::Result<Chunk>> + '_ {
    std::future::poll_fn(move |cx| {
        let mut buf = take();
        let mut rb = ReadBuf::new(&mut buf);
        let polled = Pin::new(&mut *r).poll_read(cx, &mut rb);
        let len = rb.filled().len();
        match polled {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Chunk { buf, len })),
            Poll::Ready(Err(e)) => {
                give_back(buf);
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                give_back(buf);
                Poll::Pending
            }
        }
    })
}

#[cfg(test)]
pub fn spare() -> usize {
    spare::kept(&SPARE)
}
