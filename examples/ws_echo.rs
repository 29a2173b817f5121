//! A WebSocket echo server: the upstream for `benches/load/ws_scale.sh`.
//!
//! Accepts WebSocket upgrades on any path and sends every text or binary
//! message back unchanged. Loopback only; exits by itself after
//! `--lifetime-secs` so a forgotten process cannot outlive the benchmark.
//!
//!     cargo run --release --example ws_echo -- --listen 127.0.0.1:19020

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Address to listen on (must be loopback).
    #[arg(long, default_value = "127.0.0.1:19020")]
    listen: SocketAddr,
    /// Exit after this many seconds, whatever is still open.
    #[arg(long, default_value_t = 900)]
    lifetime_secs: u64,
}

fn main() {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("ws_echo: refusing non-loopback address {}", args.listen);
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await.unwrap_or_else(|e| {
            eprintln!("ws_echo: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        });
        eprintln!("ws_echo: listening on {}", args.listen);
        let deadline = tokio::time::sleep(Duration::from_secs(args.lifetime_secs));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => { tokio::spawn(echo(stream)); }
                    // Out of descriptors and the like: back off briefly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                _ = &mut deadline => {
                    eprintln!("ws_echo: lifetime over, exiting");
                    break;
                }
            }
        }
    });
    // Open connections are dropped with the runtime.
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            // Pings are answered by tungstenite on the next write/flush.
            _ => {
                if ws.flush().await.is_err() {
                    break;
                }
            }
        }
    }
}
