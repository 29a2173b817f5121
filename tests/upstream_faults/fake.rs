//! The raw-TCP fake gateways: how each one misbehaves, per connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::WAIT;
use crate::common::read_until_head_end;

/// How a fake gateway treats each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behave {
    /// Read the request head, then reset (RST) without answering.
    ResetBeforeHead,
    /// Read the request head, then close (FIN) without answering.
    CloseBeforeHead,
    /// Reset as soon as the connection is accepted, reading nothing.
    AcceptAndReset,
    /// Send a 200 head promising 100 000 bytes, 1 000 of them, then reset.
    ResetMidBody,
    /// Send a chunked 200 head and one chunk, then reset.
    ResetMidChunked,
    /// Read the request head and never answer (bounded: 30 s).
    Stall,
    /// Accept a WebSocket upgrade, echo one frame as "ok", then reset on
    /// the next one.
    WebSocketThenReset,
    /// Accept a WebSocket upgrade, then close the TCP connection without
    /// a close frame of its own once the client's close frame arrives.
    WebSocketCloseWithoutEcho,
}

/// A raw-TCP fake gateway on 127.0.0.1.
pub struct Fake {
    pub addr: SocketAddr,
    /// Request heads received (clawgate's readiness probe sends none).
    heads: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Fake {
    pub async fn start(behave: Behave) -> Fake {
        Self::start_on("127.0.0.1:0", behave).await
    }

    pub async fn start_on(addr: &str, behave: Behave) -> Fake {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(AtomicUsize::new(0));
        let count = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(s, behave, count.clone()));
            }
        });
        Fake { addr, heads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read until the end of a request head (bounded); the head as text.
/// Counts heads that arrived.
async fn read_head(s: &mut TcpStream, heads: &AtomicUsize) -> String {
    let mut head = Vec::new();
    let _ = tokio::time::timeout(WAIT, read_until_head_end(s, &mut head)).await;
    if !head.is_empty() {
        heads.fetch_add(1, Ordering::SeqCst);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn serve(mut s: TcpStream, behave: Behave, heads: Arc<AtomicUsize>) {
    match behave {
        Behave::AcceptAndReset => reset(s),
        Behave::ResetBeforeHead => {
            read_head(&mut s, &heads).await;
            reset(s);
        }
        Behave::CloseBeforeHead => {
            read_head(&mut s, &heads).await;
            let _ = s.shutdown().await;
        }
        Behave::ResetMidBody => {
            read_head(&mut s, &heads).await;
            let mut out =
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n"
                    .to_vec();
            out.extend(std::iter::repeat_n(b'x', 1000));
            let _ = s.write_all(&out).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            reset(s);
        }
        Behave::ResetMidChunked => {
            read_head(&mut s, &heads).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\nf\r\ndata: first\n\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            reset(s);
        }
        Behave::Stall => {
            read_head(&mut s, &heads).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Behave::WebSocketThenReset | Behave::WebSocketCloseWithoutEcho => {
            let head = read_head(&mut s, &heads).await;
            let Some(key) = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            }) else {
                reset(s);
                return;
            };
            let accept = derive_accept_key(key.as_bytes());
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept}\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await;
            let mut buf = [0u8; 1024];
            if matches!(behave, Behave::WebSocketCloseWithoutEcho) {
                let _ = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
                let _ = s.shutdown().await;
                return;
            }
            // First client frame: answer "ok" (unmasked text frame).
            if !matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                return;
            }
            let _ = s.write_all(&[0x81, 2, b'o', b'k']).await;
            // Second client frame: drop the connection without a close frame.
            let _ = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
            reset(s);
        }
    }
}
