//! One TCP connection to the gateway with its buffers, a pool of idle
//! ones (one per upstream and compartment, see `pools`), and the raw
//! stream a 101 hands to a tunnel.
//!
//! The pool is LIFO (the warmest connection first) and holds connections
//! only between exchanges: a connection is out of the pool for exactly as
//! long as a request or its response body uses it.
//!
//! It keeps every connection handed back, up to [`MAX_IDLE`], and lets
//! surplus ones go by age instead ([`IDLE_LIMIT`], or when the gateway
//! closes them). A small cap would close a burst's extra connections on
//! return and open them again for the next burst, leaving sockets in
//! TIME_WAIT.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::prefixed::Prefixed;

/// Idle connections kept per upstream at most; more are closed when
/// returned. Well above any concurrency seen in practice: the pool holds
/// what the peak needed, and [`IDLE_LIMIT`] trims it afterwards.
const MAX_IDLE: usize = 4096;
/// An idle connection unused this long is closed when the pool is next
/// touched (the gateway usually closes it sooner: Node's keep-alive
/// timeout is 5 s).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Idle connections looked at from the old end per return, so a return
/// costs the same however large the pool has grown.
const TRIM_PER_PUT: usize = 2;
/// Read buffer: allocated once per connection, topped up to this when low.
const READ_CHUNK: usize = 16 * 1024;
const READ_LOW: usize = 2 * 1024;

/// Boxed once, when connected, and moved as a box from then on: through
/// the pool, the exchange and the response body, which is itself moved
/// from the request path's every layer to the client's writer.
pub struct Connection {
    pub stream: TcpStream,
    /// Bytes read from the gateway and not yet consumed.
    pub read: BytesMut,
    /// The request head being written (kept for its capacity).
    pub write: Vec<u8>,
    /// Taken from the pool (it served an earlier exchange).
    pub reused: bool,
    /// When it last went back to the pool.
    idle_since: Instant,
    /// The exchange's write and response timeouts: one timer for the
    /// connection's life, moved on for each wait (moving a registered
    /// tokio timer later is an atomic update; a fresh timeout per wait
    /// would add and remove a timer-wheel entry each time).
    due: Pin<Box<Sleep>>,
}

/// A wait on the gateway ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl Connection {
    pub fn new(stream: TcpStream) -> Box<Self> {
        Box::new(Connection {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: Vec::with_capacity(1024),
            reused: false,
            idle_since: Instant::now(),
            due: Box::pin(tokio::time::sleep(Duration::ZERO)),
        })
    }

    /// Start a wait on the gateway that [`Self::read_more_or_expire`] ends
    /// once `limit` has passed.
    pub fn arm(&mut self, limit: Duration) {
        self.due.as_mut().reset(tokio::time::Instant::now() + limit);
    }

    /// Read what the gateway has sent into `read`; `Ok(0)` is end of stream.
    pub fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_LOW {
            self.read.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    /// [`Self::poll_read_more`] until the time [`Self::arm`] set passes.
    pub async fn read_more_or_expire(&mut self) -> Result<io::Result<usize>, Elapsed> {
        poll_fn(|cx| {
            if let Poll::Ready(r) = self.poll_read_more(cx) {
                return Poll::Ready(Ok(r));
            }
            self.due.as_mut().poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }

    /// Write all of [`Self::write`], or `Err(Elapsed)` once the gateway has
    /// not taken it within `limit`. The timer is armed only if the write
    /// has to wait, which it rarely does.
    pub async fn write_within(&mut self, limit: Duration) -> Result<io::Result<()>, Elapsed> {
        let Connection {
            stream, write, due, ..
        } = self;
        let mut sent = pin!(stream.write_all(write));
        let mut armed = false;
        poll_fn(|cx| {
            if let Poll::Ready(r) = sent.as_mut().poll(cx) {
                return Poll::Ready(Ok(r));
            }
            if !armed {
                due.as_mut().reset(tokio::time::Instant::now() + limit);
                armed = true;
            }
            due.as_mut().poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }

    /// Still open with nothing unread? Decided from the readiness the
    /// reactor already recorded: a closed or chattering idle connection
    /// was reported readable. Costs a syscall only in that case.
    fn idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Idle connections to one upstream for one compartment: the newest at
/// the back.
#[derive(Default)]
pub struct Pool {
    // Boxes, not connections: taking one out and putting it back must not
    // box it again.
    idle: Mutex<VecDeque<Box<Connection>>>,
}

impl Pool {
    /// The most recently used connection that is still open.
    pub fn take(&self) -> Option<Box<Connection>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut c) = idle.pop_back() {
            if c.idle_and_open() {
                c.reused = true;
                return Some(c);
            }
        }
        None
    }

    /// Back after a complete exchange. A connection with unread bytes,
    /// buffered or waiting in the socket, is out of step with the gateway
    /// (a response nobody asked for) and is closed instead. The socket
    /// check is free unless the reactor saw bytes arrive.
    pub fn put(&self, mut c: Box<Connection>) {
        if !c.read.is_empty() || !c.idle_and_open() {
            return;
        }
        let now = Instant::now();
        c.idle_since = now;
        if let Ok(mut idle) = self.idle.lock() {
            trim(&mut idle, now);
            if idle.len() < MAX_IDLE {
                idle.push_back(c);
            }
        }
    }

    /// Close every idle connection the gateway closed or wrote to, or that
    /// sat unused past [`IDLE_LIMIT`]; true if none is left.
    pub fn sweep(&self, now: Instant) -> bool {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| {
            now.saturating_duration_since(c.idle_since) <= IDLE_LIMIT && c.idle_and_open()
        });
        idle.is_empty()
    }
}

/// Close up to [`TRIM_PER_PUT`] of the oldest idle connections that the
/// gateway closed or that sat unused past [`IDLE_LIMIT`]. The old end
/// is where both are likeliest (LIFO reuse keeps the new end warm), and
/// looking there on every return means a closed one does not sit in
/// CLOSE_WAIT until LIFO order reaches it.
fn trim(idle: &mut VecDeque<Box<Connection>>, now: Instant) {
    for _ in 0..TRIM_PER_PUT {
        match idle.front() {
            Some(oldest)
                if now.saturating_duration_since(oldest.idle_since) > IDLE_LIMIT
                    || !oldest.idle_and_open() =>
            {
                idle.pop_front();
            }
            _ => break,
        }
    }
}

/// The gateway's side of a switched (101) connection: the bytes that came
/// with the 101 head first, then the stream.
pub type Upgraded = Prefixed<TcpStream>;

pub fn upgraded(c: Connection) -> Upgraded {
    // The read buffer was sized for responses; an idle WebSocket must
    // not keep 16 KiB of it, only what came early (usually nothing).
    let early = if c.read.is_empty() {
        BytesMut::new()
    } else {
        BytesMut::from(&c.read[..])
    };
    Prefixed::new(early, c.stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(l: &TcpListener) -> (Box<Connection>, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (Connection::new(c), s)
    }

    /// Let the reactor record what happened on the sockets.
    async fn settle() {
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_pool_hands_out_only_open_quiet_connections_newest_first() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let (open, _keep) = pair(&l).await;
        let open_port = open.stream.local_addr().unwrap().port();
        let (closed, peer) = pair(&l).await;
        let (chatty, mut talker) = pair(&l).await;
        pool.put(open);
        pool.put(closed);
        pool.put(chatty);
        drop(peer);
        talker.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        settle().await;
        let got = pool.take().expect("the open connection");
        assert!(got.reused);
        assert_eq!(got.stream.local_addr().unwrap().port(), open_port);
        assert!(
            pool.take().is_none(),
            "closed and chattering ones are dropped"
        );
    }

    #[tokio::test]
    async fn returning_a_connection_drops_the_oldest_if_the_gateway_closed_it() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let (old, peer) = pair(&l).await;
        pool.put(old);
        drop(peer);
        settle().await;
        let (fresh, _keep) = pair(&l).await;
        let fresh_port = fresh.stream.local_addr().unwrap().port();
        pool.put(fresh);
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "the closed one is gone");
        let got = pool.take().unwrap();
        assert_eq!(got.stream.local_addr().unwrap().port(), fresh_port);
    }

    #[tokio::test]
    async fn a_burst_of_returns_is_kept_whole_not_cut_to_a_few_hundred() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let mut peers = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..300 {
            let (c, peer) = pair(&l).await;
            conns.push(c);
            peers.push(peer);
        }
        for c in conns {
            pool.put(c);
        }
        let mut back = 0;
        while pool.take().is_some() {
            back += 1;
        }
        assert_eq!(back, 300, "every connection of the burst is reused");
    }

    #[tokio::test]
    async fn connections_idle_past_the_limit_are_closed_from_the_old_end() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut idle = VecDeque::new();
        let mut peers = Vec::new();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        for since in [0, 10, 20_000] {
            let (mut c, peer) = pair(&l).await;
            c.idle_since = ms(since);
            idle.push_back(c);
            peers.push(peer);
        }
        let limit_ms = IDLE_LIMIT.as_millis() as u64;
        trim(&mut idle, ms(limit_ms));
        assert_eq!(idle.len(), 3, "none past the limit yet");
        trim(&mut idle, ms(limit_ms + 15));
        assert_eq!(idle.len(), 1, "the two older ones closed");
        assert_eq!(idle[0].idle_since, ms(20_000), "the newest stays");
        trim(&mut idle, ms(limit_ms + 15));
        assert_eq!(idle.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_with_unread_bytes_is_not_pooled() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let (mut c, _peer) = pair(&l).await;
        c.read.extend_from_slice(b"extra");
        pool.put(c);
        assert!(pool.take().is_none());
    }

    #[tokio::test]
    async fn a_connection_the_gateway_wrote_to_after_the_exchange_is_not_pooled() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let (c, mut peer) = pair(&l).await;
        peer.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        settle().await;
        pool.put(c);
        assert_eq!(pool.idle.lock().unwrap().len(), 0, "closed on return");
    }

    #[tokio::test]
    async fn a_sweep_closes_idle_connections_that_were_written_to_or_closed() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let (quiet, _keep) = pair(&l).await;
        let (chatty, mut talker) = pair(&l).await;
        let (closed, gone) = pair(&l).await;
        for c in [quiet, chatty, closed] {
            pool.put(c);
        }
        talker.write_all(b"x").await.unwrap();
        drop(gone);
        settle().await;
        assert!(!pool.sweep(Instant::now()));
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        assert!(pool.sweep(Instant::now() + IDLE_LIMIT + Duration::from_millis(1)));
    }

    #[tokio::test]
    async fn an_upgraded_stream_yields_the_early_bytes_first() {
        use tokio::io::AsyncReadExt;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut c, mut peer) = pair(&l).await;
        c.read.extend_from_slice(b"early ");
        let mut up = upgraded(*c);
        peer.write_all(b"later").await.unwrap();
        drop(peer);
        let mut all = Vec::new();
        up.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"early later");
    }
}
