//! clawgate's own HTTP/1.1 client to the gateway (src/upstream), on
//! real sockets against a raw-TCP fake gateway that writes its responses
//! by hand: body framing (chunked with extensions and trailers, delimited
//! by close, HEAD, 204, 304), interim 1xx responses, connection reuse and
//! `connection: close`, pooled connections the gateway closed, request
//! bodies (sized and chunked), malformed responses, and the bytes that
//! ride along with a 101.
//!
//! The fake answers by request path and records every request it read,
//! with the connection it came on (numbered from 1 in order of the first
//! request; clawgate's startup probe, which sends nothing, is not counted).

// The healthy `common::Upstream` re-export goes unused here: the gateway
// is the hand-written fake in `fake.rs`.
mod client;
#[allow(unused_imports)]
#[path = "../common/mod.rs"]
mod common;
mod fake;

mod bodies;
mod faults;
mod framing;
mod reuse;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::*;
use common::*;
use fake::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const ALICE: &str = "alice-wire-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decode a complete chunked body (RFC 9112 §7.1) from the front of `buf`,
/// strictly. `Ok(None)`: incomplete. `Ok(Some((data, used)))`.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[at..at + eol];
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!(
                "bad chunk-size line {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size).unwrap(), 16)
            .map_err(|e| format!("chunk size: {e}"))?;
        at += eol + 2;
        if size == 0 {
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((out, at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}

/// `name: value` lines of a head (after its first line), names lowercased.
fn parse_headers(head: &str) -> (String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (first, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// clawgate in front of a fresh fake; alice's requests go to the fake.
async fn setup() -> (Fake, ConfigDir, clawgate::runtime::server::Server) {
    let fake = Fake::start().await;
    let cfg = ConfigDir::new(&[("gw", fake.url())], &[MemberSpec::new("alice", ALICE)]);
    // A response that never completes shows up as a 504 well within WAIT.
    cfg.write_base("[timeouts]\nupstream_response = \"4s\"\n");
    let server = start(&cfg).await;
    (fake, cfg, server)
}

fn bearer() -> String {
    format!("Bearer {ALICE}")
}

async fn alice_get(addr: SocketAddr, path: &str) -> Reply {
    get(addr, path, &[("authorization", &bearer())]).await
}
