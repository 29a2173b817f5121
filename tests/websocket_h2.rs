//! WebSockets over HTTP/2 (RFC 8441 extended CONNECT) through clawgate on
//! real sockets: a stream of an h2 connection (h2c by prior knowledge, and
//! TLS with ALPN h2 as browsers do) becomes the gateway's HTTP/1.1 upgrade
//! with a key clawgate made, the gateway's 101 becomes the stream's 200,
//! and frames pass both ways untouched. The member's identity, the Origin
//! check before any upstream request, and plain CONNECT still refused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::tls::{tls_connect, Pki};
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const ALICE: &str = "alice-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Wait for the server's SETTINGS (extended CONNECT is usable only once
/// they arrived) by sending one ordinary request first.
async fn settle(sender: &mut SendRequest<Empty<Bytes>>, authority: &str) {
    let req = http::Request::get(format!("http://{authority}/"))
        .header("x-clawgate-token", ALICE)
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("answered within 10s")
        .unwrap();
    let _ = resp.into_body().collect().await;
}

/// One HTTP/2 connection to clawgate, the streams' scheme and authority.
struct H2 {
    sender: SendRequest<Empty<Bytes>>,
    scheme: &'static str,
    authority: String,
}

impl H2 {
    /// h2c by prior knowledge, settled (see [`settle`]).
    async fn h2c(addr: std::net::SocketAddr) -> H2 {
        let mut h2 = H2::h2c_unsettled(addr).await;
        settle(&mut h2.sender, &h2.authority).await;
        h2
    }

    async fn h2c_unsettled(addr: std::net::SocketAddr) -> H2 {
        H2 {
            sender: h2c(addr).await,
            scheme: "http",
            authority: addr.to_string(),
        }
    }

    /// A WebSocket on a new stream: see [`connect_ws`].
    async fn ws(&mut self, path: &str, headers: &[(&str, &str)]) -> Opened {
        connect_ws(
            &mut self.sender,
            self.scheme,
            &self.authority,
            path,
            headers,
        )
        .await
    }
}

/// An extended CONNECT's answer: status, fields, body, and the stream as
/// a WebSocket when it opened.
type Opened = (u16, http::HeaderMap, String, Option<Ws>);

/// An extended CONNECT for `path` with `headers`.
async fn connect_ws(
    sender: &mut SendRequest<Empty<Bytes>>,
    scheme: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Opened {
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("{scheme}://{authority}{path}"))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(WAIT, sender.send_request(req.body(Empty::new()).unwrap()))
        .await
        .expect("answered within 10s")
        .unwrap_or_else(|e| panic!("extended CONNECT failed: {e:?}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if status != 200 {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        return (status, headers, String::from_utf8_lossy(&body).into(), None);
    }
    let up = hyper::upgrade::on(resp).await.expect("the stream opens");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Client, None).await;
    (status, headers, String::new(), Some(ws))
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.as_str().to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn assert_echoes(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    assert_eq!(next_text(ws).await, text, "echoed exactly");
}

async fn setup() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let alice = MemberSpec::new("alice", ALICE).set("ORIGINS", "https://app.example.com none");
    let cfg = ConfigDir::new(&[("prod", up.url())], &[alice]);
    let server = start(&cfg).await;
    (up, cfg, server)
}

#[tokio::test]
async fn an_h2c_stream_becomes_the_gateways_websocket_with_the_members_identity() {
    let (up, cfg, server) = setup().await;
    let mut h2 = H2::h2c(server.addr).await;
    let before = up.count();

    let (status, headers, body, ws) = h2
        .ws(
            "/ws-headers",
            &[
                ("x-clawgate-token", ALICE),
                ("origin", "https://app.example.com"),
            ],
        )
        .await;
    assert_eq!(status, 200, "the stream opens with a 200: {body}");
    let rid = headers["x-request-id"].to_str().unwrap().to_string();
    assert!(
        headers.get("sec-websocket-accept").is_none() && headers.get("upgrade").is_none(),
        "the 101's handshake fields stay between clawgate and the gateway: {headers:?}"
    );
    let mut ws = ws.unwrap();
    let seen: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(seen["x-forwarded-user"], serde_json::json!(["alice"]));
    assert_eq!(seen["x-request-id"][0], rid.as_str());
    assert_eq!(seen["upgrade"][0], "websocket");
    assert_eq!(seen["sec-websocket-version"][0], "13");
    let key = seen["sec-websocket-key"][0]
        .as_str()
        .expect("a key was made");
    assert_eq!(key.len(), 24, "16 bytes in base64: {key}");
    assert!(seen.get("x-clawgate-token").is_none(), "credential leaked");
    assert_echoes(&mut ws, "over h2").await;

    // A second WebSocket on the same connection, while the first is open.
    let (status, _, body, ws2) = h2.ws("/ws", &[("x-clawgate-token", ALICE)]).await;
    assert_eq!(status, 200, "{body}");
    let mut ws2 = ws2.unwrap();
    assert_echoes(&mut ws2, &"y".repeat(70_000)).await;
    assert_echoes(&mut ws, "the first still open").await;
    assert_eq!(
        up.count() - before,
        2,
        "one upgrade per stream reached the gateway"
    );

    let gauge = sample(
        &metrics(server.admin_addr).await,
        "clawgate_websockets_open{member=\"alice\"}",
    );
    assert_eq!(gauge, 2.0, "both counted as open WebSockets");
    ws.close(None).await.unwrap();
    ws2.close(None).await.unwrap();
    let line = cfg.log_line(&rid).await;
    assert_eq!(line["member"], "alice");
    assert_eq!(
        (&line["method"], &line["status"]),
        (&serde_json::json!("CONNECT"), &serde_json::json!(200))
    );
    // Its close line says what the client sent and got, not an h1 101.
    let closed = cfg
        .websocket_line(&rid)
        .await
        .expect("a websocket line when it closed");
    assert_eq!(closed["method"], "CONNECT");
    assert_eq!(closed["status"], 200);
    assert_eq!(closed["member"], "alice");
}

#[tokio::test]
async fn an_h2_websocket_from_a_disallowed_origin_gets_the_403_diff_and_no_upstream_request() {
    let (up, _cfg, server) = setup().await;
    let mut h2 = H2::h2c(server.addr).await;
    let before = up.count();
    let (status, _, body, ws) = h2
        .ws(
            "/ws",
            &[
                ("x-clawgate-token", ALICE),
                ("origin", "http://app.example.com"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert!(ws.is_none());
    let diff: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(diff["reason"], "origin_not_allowed");
    assert_eq!(diff["origin"]["nearest"], "https://app.example.com");
    assert_eq!(up.count(), before, "nothing reached the gateway");

    // Without a credential: 401, nothing upstream either.
    let (status, _, _, _) = h2.ws("/ws", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(up.count(), before);
}

#[tokio::test]
async fn plain_h2_connect_is_still_refused() {
    let (up, _cfg, server) = setup().await;
    let mut sender = h2c(server.addr).await;
    let before = up.count();
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("example.com:443")
        .header("x-clawgate-token", ALICE)
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("answered within 10s")
        .unwrap();
    assert_eq!(resp.status(), 405, "not an open proxy");
    assert_eq!(up.count(), before);
}

#[tokio::test]
async fn over_tls_with_alpn_h2_as_browsers_do() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE)],
        &pki.listen_tls(),
    );
    let server = start(&cfg).await;
    let tls = tls_connect(server.addr, pki.client_config(None, &["h2"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut h2 = H2 {
        sender,
        scheme: "https",
        authority: format!("localhost:{}", server.addr.port()),
    };
    settle(&mut h2.sender, &h2.authority).await;
    let (status, _, body, ws) = h2.ws("/ws-headers", &[("x-clawgate-token", ALICE)]).await;
    assert_eq!(status, 200, "{body}");
    let mut ws = ws.unwrap();
    let seen: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(seen["x-forwarded-proto"][0], "https");
    assert_eq!(seen["x-forwarded-user"][0], "alice");
    assert_echoes(&mut ws, "wss over h2").await;
}

#[tokio::test]
async fn h2_websockets_count_against_max_connections() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base("[limits]\nmax_connections = 3\n");
    let server = start(&cfg).await;
    let mut h2 = H2::h2c(server.addr).await;
    let token = [("x-clawgate-token", ALICE)];
    // The h2 connection is one; two tunnels make three.
    let (a, _, _, ws_a) = h2.ws("/ws", &token).await;
    let (b, _, _, ws_b) = h2.ws("/ws", &token).await;
    assert_eq!((a, b), (200, 200));
    let before = up.count();
    let (status, _, body, ws) = h2.ws("/ws", &token).await;
    assert_eq!(status, 503, "{body}");
    assert!(ws.is_none());
    let refusal: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal["reason"], "max_connections");
    assert_eq!(up.count(), before, "the gateway was not asked");
    // The open ones still echo.
    let (mut ws_a, mut ws_b) = (ws_a.unwrap(), ws_b.unwrap());
    assert_echoes(&mut ws_a, "a").await;
    assert_echoes(&mut ws_b, "b").await;
}

#[tokio::test]
async fn a_revoked_h2_websocket_gets_close_1008_and_the_connections_other_stream_stays() {
    let up = Upstream::start().await;
    let members = [
        MemberSpec::new("alice", ALICE),
        MemberSpec::new("bob", "bob-token-9876543210"),
    ];
    let cfg = ConfigDir::new(&[("prod", up.url())], &members);
    let server = start(&cfg).await;
    let mut h2 = H2::h2c(server.addr).await;
    let (_, headers, _, alice) = h2.ws("/ws", &[("x-clawgate-token", ALICE)]).await;
    let rid = headers["x-request-id"].to_str().unwrap().to_string();
    let (_, _, _, bob) = h2
        .ws("/ws", &[("x-clawgate-token", "bob-token-9876543210")])
        .await;
    let (mut alice, mut bob) = (alice.unwrap(), bob.unwrap());
    assert_echoes(&mut alice, "before").await;
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("EGRESS_CIDRS", "192.0.2.0/24"));
    assert_eq!(server.reload().unwrap().revoked, 1);
    let frame = close_frame(&mut alice, Duration::from_secs(3))
        .await
        .expect("a close frame, not a cut stream");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains(&rid), "{}", frame.reason);
    // Bob's stream on the same h2 connection is untouched.
    assert_echoes(&mut bob, "still here").await;
}

#[tokio::test]
async fn draining_closes_h2_websockets_with_1001_and_finishes() {
    let (_up, _cfg, server) = setup().await;
    let mut h2 = H2::h2c(server.addr).await;
    let (_, _, _, ws) = h2.ws("/ws", &[("x-clawgate-token", ALICE)]).await;
    let mut ws = ws.unwrap();
    assert_echoes(&mut ws, "before").await;
    let shutdown = tokio::spawn(server.shutdown(Duration::from_secs(5)));
    let frame = close_frame(&mut ws, Duration::from_secs(3))
        .await
        .expect("a close frame on drain");
    assert_eq!(u16::from(frame.code), 1001);
    drop(ws);
    assert!(
        tokio::time::timeout(Duration::from_secs(6), shutdown)
            .await
            .expect("the drain ends with the h2 connection")
            .unwrap(),
        "drained in time"
    );
}

#[tokio::test]
async fn a_gateway_101_with_the_wrong_accept_is_a_502_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A raw gateway: reads the head, answers 101 with an accept for no key.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    let (head_tx, head_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        // Connections that send no head (clawgate's readiness probe) are skipped.
        let (mut s, buf) = loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break (s, buf);
            }
        };
        let _ = head_tx.send(String::from_utf8_lossy(&buf).into_owned());
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBhY2NlcHQ=\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{gw}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let server = start(&cfg).await;
    let mut h2 = H2::h2c_unsettled(server.addr).await;
    // No settle request here (the gateway answers once): wait for SETTINGS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, body, ws) = h2.ws("/ws?x=1", &[("x-clawgate-token", ALICE)]).await;
    assert_eq!(status, 502, "{body}");
    assert!(ws.is_none());
    let head = head_rx.await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /ws?x=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nsec-websocket-key: "), "{head}");
    assert!(head.contains("\r\nsec-websocket-version: 13\r\n"), "{head}");
    assert!(head.contains("\r\nx-forwarded-user: alice\r\n"), "{head}");
    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            "clawgate_upstream_errors_total{kind=\"bad_websocket_accept\",upstream=\"prod\"}"
        ),
        1.0,
        "{m}"
    );
}
