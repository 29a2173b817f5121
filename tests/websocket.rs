//! WebSocket upgrades through clawgate on real sockets: exact echoes,
//! identity on the upgrade, the Origin check before any 101, the open
//! gauge and access-log line, and open sockets across reloads, member
//! removal and token expiry. Also wss with a client certificate.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::tls::{tls_connect, Pki};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-9876543210";
const WAIT: Duration = Duration::from_secs(10);

async fn setup(members: &[MemberSpec]) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], members);
    let server = start(&cfg).await;
    (up, cfg, server)
}

/// The next data message (pings and pongs skipped), bounded.
async fn next_data<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within 10s")
            .expect("socket still open")
            .expect("no WebSocket error");
        if msg.is_text() || msg.is_binary() || msg.is_close() {
            return msg;
        }
    }
}

async fn assert_echoes<S>(ws: &mut WebSocketStream<S>, msg: Message)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(msg.clone()).await.expect("send");
    assert_eq!(next_data(ws).await, msg);
}

/// Does the socket end (close frame, EOF or error) within `within`?
async fn closes_within<S>(ws: &mut WebSocketStream<S>, within: Duration) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ended = async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(within, ended).await.is_ok()
}

/// Poll the open-WebSockets gauge of `member` until it reads `want` (2 s).
async fn ws_gauge_reaches(admin: SocketAddr, member: &str, want: f64) -> f64 {
    let series = format!("clawgate_websockets_open{{member=\"{member}\"}}");
    sample_reaches(admin, &series, want).await
}

#[tokio::test]
async fn websocket_messages_are_echoed_exactly_through_the_proxy() {
    let (up, _cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let (mut ws, _) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("hello")).await;
    assert_echoes(
        &mut ws,
        Message::text("{\"type\":\"connect\",\"sig\":\"ü…✓\"}"),
    )
    .await;
    assert_echoes(&mut ws, Message::binary((0..=255u8).collect::<Vec<_>>())).await;
    assert_echoes(&mut ws, Message::binary(Vec::<u8>::new())).await;
    // Larger than the copy buffers: split across reads, still one frame.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_echoes(&mut ws, Message::binary(big)).await;
    assert_echoes(&mut ws, Message::text("x".repeat(70_000))).await;
    assert_eq!(up.count(), 1, "one upgrade request reached the upstream");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn upstream_sees_the_member_identity_on_the_upgrade_request() {
    let (_up, _cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let (mut ws, rid) = open_ws(server.addr, "/ws-headers", ALICE).await;
    let Message::Text(first) = next_data(&mut ws).await else {
        panic!("first message is the upstream's header dump");
    };
    let h: serde_json::Value = serde_json::from_str(first.as_str()).unwrap();
    assert_eq!(h["x-forwarded-user"], serde_json::json!(["alice"]));
    assert_eq!(h["x-openclaw-scopes"][0], "operator.read");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-request-id"][0], rid.as_str());
    assert_eq!(h["upgrade"][0], "websocket");
    assert!(
        h.get("x-clawgate-token").is_none(),
        "credential leaked upstream"
    );
    assert_echoes(&mut ws, Message::text("after headers")).await;
}

#[tokio::test]
async fn websocket_upgrade_with_a_bad_origin_gets_403_with_the_diff_before_any_101() {
    let (up, _cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let r = get(
        server.addr,
        "/ws",
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("origin", "https://alice.example.com:8443"),
            ("x-clawgate-token", ALICE),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let b = r.json();
    assert_eq!(b["reason"], "origin_not_allowed");
    assert_eq!(b["member"], "alice");
    assert_eq!(b["origin"]["presented"], "https://alice.example.com:8443");
    assert_eq!(b["origin"]["nearest"], "https://alice.example.com");
    assert!(
        b["origin"]["hint"].as_str().unwrap().contains("port"),
        "hint names the port: {}",
        b["origin"]["hint"]
    );
    assert_eq!(up.count(), 0, "the upgrade must not reach the upstream");
}

#[tokio::test]
async fn websockets_open_gauge_is_one_while_open_and_zero_after_close() {
    let (_up, _cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    // Before the first WebSocket the labelled series does not exist yet:
    // absent and 0 both mean none open. After a close it must read 0.
    let m = metrics(server.admin_addr).await;
    let before = try_sample(&m, "clawgate_websockets_open{member=\"alice\"}");
    assert_eq!(before.unwrap_or(0.0), 0.0, "{m}");
    let (mut ws, _) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("ping")).await;
    assert_eq!(ws_gauge_reaches(server.admin_addr, "alice", 1.0).await, 1.0);
    ws.close(None).await.unwrap();
    assert!(closes_within(&mut ws, WAIT).await);
    assert_eq!(ws_gauge_reaches(server.admin_addr, "alice", 0.0).await, 0.0);
}

#[tokio::test]
async fn closed_websocket_gets_an_access_log_line_of_kind_websocket() {
    let (_up, cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let (mut ws, rid) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("hello")).await;
    assert!(
        !cfg.access_log()
            .iter()
            .any(|l| l["request_id"] == rid.as_str() && l["kind"] == "websocket"),
        "the websocket line is written at close, not while open"
    );
    ws.close(None).await.unwrap();
    assert!(closes_within(&mut ws, WAIT).await);
    let line = cfg
        .websocket_line(&rid)
        .await
        .expect("a websocket access-log line at close");
    assert_eq!(line["member"], "alice");
    assert_eq!(line["path"], "/ws");
    assert_eq!(line["status"], 101);
    assert_eq!(line["upstream"], "prod");
}

#[tokio::test]
async fn open_websocket_survives_a_reload_and_still_echoes() {
    let (_up, cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let (mut ws, _) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("before")).await;
    cfg.write_member(&MemberSpec::new("bob", BOB));
    let outcome = server.reload().expect("reload accepted");
    assert_eq!((outcome.members, outcome.revoked), (2, 0));
    assert_echoes(&mut ws, Message::text("after")).await;
    assert_echoes(&mut ws, Message::binary(vec![1u8, 2, 3])).await;
}

#[tokio::test]
async fn removing_a_member_closes_only_that_members_open_websocket() {
    let (_up, cfg, server) =
        setup(&[MemberSpec::new("alice", ALICE), MemberSpec::new("bob", BOB)]).await;
    let (mut alice, _) = open_ws(server.addr, "/ws", ALICE).await;
    let (mut bob, _) = open_ws(server.addr, "/ws", BOB).await;
    assert_echoes(&mut alice, Message::text("a")).await;
    assert_echoes(&mut bob, Message::text("b")).await;
    cfg.remove_member("alice");
    let outcome = server.reload().expect("reload accepted");
    assert_eq!(outcome.revoked, 1);
    assert!(
        closes_within(&mut alice, Duration::from_secs(1)).await,
        "alice's WebSocket is still open after her file was removed"
    );
    assert_echoes(&mut bob, Message::text("bob carries on")).await;
}

#[tokio::test]
async fn open_websocket_is_closed_when_its_token_expires() {
    // Whole seconds in the file: expiry lands 2 to 3 s from now.
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3));
    let alice = MemberSpec::new("alice", ALICE)
        .set("TOKEN_SHA256", &format!("{}@{expires}", sha256_hex(ALICE)));
    let (_up, cfg, server) = setup(&[alice]).await;
    let (mut ws, rid) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("before expiry")).await;
    assert!(
        closes_within(&mut ws, Duration::from_secs(8)).await,
        "the WebSocket outlived its token"
    );
    let line = cfg
        .websocket_line(&rid)
        .await
        .expect("a websocket access-log line at close");
    assert_eq!(line["reason"], "token_expired");
}

#[tokio::test]
async fn wss_with_a_client_certificate_identifies_the_member_and_echoes() {
    let pki = Pki::new();
    let cert = pki.client("alice", Vec::new());
    let up = Upstream::start().await;
    let alice = MemberSpec::new("alice", "unused")
        .unset("TOKEN_SHA256")
        .set("CERT_SHA256", &cert.sha256_hex());
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &[alice],
        &pki.listen_mtls("required"),
    );
    let server = start(&cfg).await;
    // WebSocket upgrades are HTTP/1.1: offer only that.
    let tls = tls_connect(server.addr, pki.client_config(Some(&cert), &["http/1.1"]))
        .await
        .expect("TLS handshake with the member certificate");
    let url = format!("wss://localhost:{}/ws-headers", server.addr.port());
    let (mut ws, _) = open(tls, &url, &[]).await;
    let Message::Text(first) = next_data(&mut ws).await else {
        panic!("first message is the upstream's header dump");
    };
    let h: serde_json::Value = serde_json::from_str(first.as_str()).unwrap();
    assert_eq!(h["x-forwarded-user"], serde_json::json!(["alice"]));
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_echoes(&mut ws, Message::text("over tls")).await;
    assert_echoes(&mut ws, Message::binary(vec![0u8, 255, 128])).await;
    ws.close(None).await.unwrap();
}

/// The close frame the proxy sent, if any, within `within`.
#[tokio::test]
async fn a_revoked_websocket_gets_close_1008_naming_its_request_id() {
    let (_up, cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let (mut ws, rid) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("before")).await;
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("EGRESS_CIDRS", "192.0.2.0/24"));
    let outcome = server.reload().unwrap();
    assert_eq!(outcome.revoked, 1);
    let frame = close_frame(&mut ws, Duration::from_secs(2))
        .await
        .expect("a close frame, not a cut connection");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(
        frame.reason.contains("cidr_not_allowed"),
        "{}",
        frame.reason
    );
    assert!(frame.reason.contains(&rid), "{}", frame.reason);
    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            "clawgate_revoked_connections_total{member=\"alice\",reason=\"cidr_not_allowed\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn draining_closes_open_websockets_with_1001() {
    let (_up, _cfg, server) = setup(&[MemberSpec::new("alice", ALICE)]).await;
    let (mut ws, _rid) = open_ws(server.addr, "/ws", ALICE).await;
    assert_echoes(&mut ws, Message::text("before")).await;
    let shutdown = tokio::spawn(server.shutdown(Duration::from_secs(5)));
    let frame = close_frame(&mut ws, Duration::from_secs(3))
        .await
        .expect("a close frame on drain");
    assert_eq!(u16::from(frame.code), 1001);
    assert!(tokio::time::timeout(Duration::from_secs(6), shutdown)
        .await
        .unwrap()
        .unwrap());
}
