//! Slow and abusive clients are cut off by the limits, and members who are
//! already connected (an open keep-alive connection, an open WebSocket)
//! keep working through it: slowloris past `header_read`, a silent
//! connection, an idle keep-alive connection, a body that stops mid-way,
//! `max_connections`, and the per-address caps (unauthenticated
//! connections, failed authentications). A slow upload that keeps moving
//! is not cut off.
//!
//! Every loop is bounded in count and time; the bounds are generous
//! multiples of the configured limits, never speed assertions.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const ALICE: &str = "alice-slow-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);
const HEADER_READ_1S: &str = "[timeouts]\nheader_read = \"1s\"\n";

async fn setup(extra_toml: &str) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base(extra_toml);
    let server = start(&cfg).await;
    (up, cfg, server)
}

/// A member's own keep-alive connection: every request goes over this one
/// socket, so a failure means this connection was hurt.
struct KeepAlive {
    send: SendRequest<Empty<Bytes>>,
    conn: JoinHandle<()>,
    requests: usize,
}

impl KeepAlive {
    async fn open(addr: SocketAddr) -> KeepAlive {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut k = KeepAlive {
            send,
            conn,
            requests: 0,
        };
        k.get_ok("open").await;
        k
    }

    /// One GET on this connection; it must be a 200 from the upstream.
    async fn get_ok(&mut self, during: &str) {
        self.requests += 1;
        let req = http::Request::get(format!("/keep-alive/{}", self.requests))
            .header("host", "gw")
            .header("authorization", format!("Bearer {ALICE}"))
            .body(Empty::new())
            .unwrap();
        let resp = tokio::time::timeout(WAIT, self.send.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{during}: keep-alive request hung"))
            .unwrap_or_else(|e| panic!("{during}: the member's keep-alive connection broke: {e}"));
        assert_eq!(resp.status(), 200, "{during}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains(&format!("/keep-alive/{}", self.requests)),
            "{during}"
        );
    }

    /// Does the server close this connection within `within`?
    async fn closed_within(self, within: Duration) -> bool {
        tokio::time::timeout(within, self.conn).await.is_ok()
    }
}

async fn open_ws(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-clawgate-token", HeaderValue::from_static(ALICE));
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("upgrade answered within 10s")
        .expect("upgrade accepted");
    assert_eq!(resp.status(), 101);
    ws
}

/// The open WebSocket still echoes.
async fn ws_echoes(ws: &mut WebSocketStream<TcpStream>, during: &str) {
    let msg = Message::text(format!("still here: {during}"));
    ws.send(msg.clone())
        .await
        .unwrap_or_else(|e| panic!("{during}: WebSocket send failed: {e}"));
    loop {
        let got = match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => panic!("{during}: no echo within 10s"),
            Ok(None) => panic!("{during}: the member's WebSocket closed"),
            Ok(Some(Err(e))) => panic!("{during}: WebSocket error: {e}"),
            Ok(Some(Ok(m))) => m,
        };
        if got.is_text() {
            assert_eq!(got, msg, "{during}");
            return;
        }
    }
}

/// Has the server closed `s` (EOF or reset)? Anything it sent first is
/// returned; it must not be a success.
async fn server_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    tokio::time::timeout(within, read_until_close(s, &mut out))
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn slowloris_is_cut_off_after_header_read_while_members_keep_working() {
    let (up, _cfg, server) = setup(HEADER_READ_1S).await;
    let mut member = KeepAlive::open(server.addr).await;
    let mut ws = open_ws(server.addr).await;

    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: never a complete head. At most 50
    // rounds (10 s, ten times header_read).
    let mut cut = None;
    for round in 0..50 {
        member.get_ok(&format!("slowloris round {round}")).await;
        ws_echoes(&mut ws, &format!("slowloris round {round}")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(b"X").await.is_err() {
            cut = Some(String::new());
            break;
        }
        if let Some(sent) = server_closed(&mut slow, Duration::from_millis(10)).await {
            cut = Some(sent);
            break;
        }
    }
    let sent = cut.expect("the trickling connection was never closed");
    assert!(
        !sent.starts_with("HTTP/1.1 2"),
        "slowloris got a success: {sent}"
    );
    member.get_ok("after slowloris").await;
    ws_echoes(&mut ws, "after slowloris").await;
    assert!(
        !up.seen().iter().any(|p| p == "GET /"),
        "the slow request reached the upstream"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_header_read() {
    let (_up, _cfg, server) = setup(HEADER_READ_1S).await;
    let mut ws = open_ws(server.addr).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let sent = server_closed(&mut silent, WAIT)
        .await
        .expect("a silent connection is closed within 10s");
    assert!(!sent.contains(" 200 "), "{sent}");
    ws_echoes(&mut ws, "after the silent connection").await;
}

#[tokio::test]
async fn idle_keep_alive_is_closed_after_header_read_but_an_idle_websocket_is_not() {
    let (_up, _cfg, server) = setup(HEADER_READ_1S).await;
    let mut ws = open_ws(server.addr).await;
    let idle = KeepAlive::open(server.addr).await;
    assert!(
        idle.closed_within(WAIT).await,
        "an idle keep-alive connection must be closed (header_read bounds idle time)"
    );
    // The WebSocket idled just as long (longer than header_read): a
    // tunnel is not a connection waiting for a request head.
    ws_echoes(&mut ws, "after the keep-alive idled out").await;
    let r = get(
        server.addr,
        "/",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200);
}

/// Wait (bounded) until the open-connections gauge reads `want`.
async fn connections_reach(server: &clawgate::runtime::server::Server, want: i64) {
    for _ in 0..200 {
        if server.state.metrics.connections_open.get() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "connections_open stayed at {} (wanted {want})",
        server.state.metrics.connections_open.get()
    );
}

#[tokio::test]
async fn max_connections_refuses_new_connections_but_not_open_ones() {
    let (_up, _cfg, server) =
        setup("[limits]\nmax_connections = 4\n[timeouts]\nheader_read = \"30s\"\n").await;
    let mut member = KeepAlive::open(server.addr).await;
    let mut ws = open_ws(server.addr).await;
    connections_reach(&server, 2).await;
    let mut hogs = Vec::new();
    for _ in 0..2 {
        hogs.push(TcpStream::connect(server.addr).await.unwrap());
    }
    connections_reach(&server, 4).await;

    let mut over = TcpStream::connect(server.addr).await.unwrap();
    let _ = over
        .write_all(
            format!("GET / HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {ALICE}\r\n\r\n")
                .as_bytes(),
        )
        .await;
    let sent = server_closed(&mut over, WAIT)
        .await
        .expect("the connection over max_connections is closed");
    assert!(sent.is_empty(), "answered over the cap: {sent}");

    member.get_ok("at max_connections").await;
    ws_echoes(&mut ws, "at max_connections").await;

    drop(hogs);
    connections_reach(&server, 2).await;
    let r = get(
        server.addr,
        "/",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200, "new connections are accepted again");
    member.get_ok("after the hogs left").await;
}

#[tokio::test]
async fn the_unauthenticated_cap_leaves_authenticated_connections_from_the_same_address_alone() {
    let (_up, _cfg, server) = setup("[limits]\nmax_unauthenticated_per_ip = 2\n").await;
    // Both identified themselves, so neither holds an unauthenticated slot.
    let mut member = KeepAlive::open(server.addr).await;
    let mut ws = open_ws(server.addr).await;
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _b = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _c = TcpStream::connect(server.addr).await.unwrap();
    let sent = server_closed(&mut a, WAIT)
        .await
        .expect("a third idle connection from 127.0.0.1 evicts the oldest");
    assert!(sent.is_empty(), "{sent}");
    member.get_ok("at the unauthenticated cap").await;
    ws_echoes(&mut ws, "at the unauthenticated cap").await;
}

#[tokio::test]
async fn a_failed_auth_block_leaves_connected_members_from_the_same_address_alone() {
    let (_up, _cfg, server) =
        setup("[limits]\nauth_failures_per_minute = 2\nauth_block = \"60s\"\n").await;
    let mut member = KeepAlive::open(server.addr).await;
    let mut ws = open_ws(server.addr).await;
    let mut last = 0;
    for _ in 0..4 {
        last = get(server.addr, "/", &[("authorization", "Bearer guess")])
            .await
            .status;
    }
    assert_eq!(last, 429, "the address is blocked");
    member.get_ok("while 127.0.0.1 is blocked").await;
    ws_echoes(&mut ws, "while 127.0.0.1 is blocked").await;
}

/// Read from `s` until the peer closes (bounded), as text.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A client that stops sending its body mid-way is answered 408 after
/// `header_read` and its connection closed: it does not hold a gateway
/// connection (or a response timer) open, and others are served meanwhile.
#[tokio::test]
async fn a_client_stalling_mid_body_gets_408_after_header_read() {
    let (_up, _cfg, server) = setup(HEADER_READ_1S).await;
    let mut member = KeepAlive::open(server.addr).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /upload HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {ALICE}\r\n\
             content-length: 100\r\n\r\n0123456789"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    member.get_ok("while a body stalls").await;
    let started = std::time::Instant::now();
    let reply = read_to_close(&mut s, WAIT).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.contains("\"reason\":\"request_body_timeout\""),
        "{reply}"
    );
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert!(started.elapsed() < WAIT, "the connection was not closed");
    // The member's connection idled through `header_read` meanwhile and
    // may be closed as idle keep-alive: serve a fresh one.
    drop(member);
    KeepAlive::open(server.addr)
        .await
        .get_ok("after the 408")
        .await;
}

/// `upstream_response` times the gateway, not the client's upload: a body
/// that keeps moving for longer than it is forwarded whole.
#[tokio::test]
async fn a_steady_upload_longer_than_upstream_response_is_forwarded_whole() {
    let (_up, _cfg, server) =
        setup("[timeouts]\nheader_read = \"1s\"\nupstream_response = \"1s\"\n").await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let pieces = 12;
    s.write_all(
        format!(
            "POST /upload HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {ALICE}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            pieces * 100
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for _ in 0..pieces {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(&[b'x'; 100]).await.unwrap();
    }
    let reply = read_to_close(&mut s, WAIT).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"body_len\":1200"), "{reply}");
}
