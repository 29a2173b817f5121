//! Upstream faults from small raw-TCP fake gateways: reset before or in
//! the middle of a response, accept-and-reset, stalling past
//! `upstream_response`, dropping an open WebSocket, and coming back. Each
//! fault reaches the client as the right status (or a cut connection, or
//! a close code) carrying the request ID, is counted in
//! `clawgate_upstream_errors_total{kind}`, and the proxy keeps serving.
//!
//! alice's upstream is the fake under test; bob's is a healthy gateway,
//! used to show that the proxy keeps serving everyone else. The fakes
//! and their faults are in `fake.rs`.

#[path = "../common/mod.rs"]
mod common;
mod fake;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use fake::{Behave, Fake};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const ALICE: &str = "alice-faults-token-0123456789";
const BOB: &str = "bob-faults-token-9876543210";
const WAIT: Duration = Duration::from_secs(10);
/// What a client gets when the gateway resets or closes before answering.
const RESET: (u16, &str) = (502, "upstream_reset");

struct Setup {
    bob_up: Upstream,
    cfg: ConfigDir,
    server: clawgate::runtime::server::Server,
}

/// alice → `faulty` (the fake), bob → `good` (a healthy gateway).
async fn setup(faulty: &str, extra_toml: &str) -> Setup {
    let bob_up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("faulty", faulty.to_string()), ("good", bob_up.url())],
        &[
            MemberSpec::new("alice", ALICE),
            MemberSpec::new("bob", BOB).set("UPSTREAM", "good"),
        ],
    );
    cfg.write_base(extra_toml);
    let server = start(&cfg).await;
    Setup {
        bob_up,
        cfg,
        server,
    }
}

/// bob, on the healthy upstream, is served: the proxy kept going.
async fn others_still_served(s: &Setup, after: &str) {
    let before = s.bob_up.count();
    let r = get(s.server.addr, "/after", &[("authorization", &bearer(BOB))]).await;
    assert_eq!(r.status, 200, "after {after}: the proxy stopped serving");
    assert_eq!(s.bob_up.count(), before + 1);
}

async fn upstream_errors(s: &Setup, kind: &str) -> f64 {
    sample(
        &metrics(s.server.admin_addr).await,
        &upstream_errors_series(kind),
    )
}

fn upstream_errors_series(kind: &str) -> String {
    format!(r#"clawgate_upstream_errors_total{{kind="{kind}",upstream="faulty"}}"#)
}

/// The upstream resets counted, polled (bounded) until the one a cut body
/// makes has been: it is counted when the body breaks, just after the
/// client's connection is cut.
async fn resets_once_counted(s: &Setup) -> f64 {
    sample_reaches(s.server.admin_addr, &upstream_errors_series("reset"), 1.0).await
}

/// A fault as client and operator see it: [`assert_fault`], one count of
/// `kind` in the upstream-errors metric, and bob still served.
async fn assert_fault_counted(
    s: &Setup,
    method: &str,
    (status, reason): (u16, &str),
    kind: &str,
    after: &str,
) {
    assert_fault(s, method, status, reason).await;
    assert_eq!(upstream_errors(s, kind).await, 1.0);
    others_still_served(s, after).await;
}

/// One request as alice: the refusal's status and reason, with the
/// request ID in body, header and access log.
async fn assert_fault(s: &Setup, method: &str, status: u16, reason: &str) -> String {
    let r = request(
        s.server.addr,
        method,
        "/api",
        &[("authorization", &bearer(ALICE))],
        if method == "POST" { "payload" } else { "" },
    )
    .await;
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["reason"], reason);
    assert_eq!(b["request_id"], r.request_id());
    assert!(is_uuid_v7(r.request_id()));
    let line = s.cfg.log_line(r.request_id()).await;
    assert_eq!(line["status"], status);
    assert_eq!(line["upstream"], "faulty");
    assert_eq!(line["reason"], reason);
    r.request_id().to_string()
}

#[tokio::test]
async fn a_reset_before_the_response_head_gives_502_and_is_not_replayed() {
    let fake = Fake::start(Behave::ResetBeforeHead).await;
    let s = setup(&fake.url(), "").await;
    assert_fault_counted(&s, "POST", RESET, "reset", "reset before head").await;
    assert_eq!(
        fake.heads(),
        1,
        "a POST the gateway may have seen is not retried"
    );
}

#[tokio::test]
async fn a_close_before_the_response_head_gives_502() {
    let fake = Fake::start(Behave::CloseBeforeHead).await;
    let s = setup(&fake.url(), "").await;
    assert_fault_counted(&s, "GET", RESET, "reset", "close before head").await;
}

#[tokio::test]
async fn a_gateway_that_accepts_and_resets_at_once_gives_502() {
    let fake = Fake::start(Behave::AcceptAndReset).await;
    let s = setup(&fake.url(), "").await;
    assert_fault_counted(&s, "GET", RESET, "reset", "accept and reset").await;
}

#[tokio::test]
async fn a_refused_connection_gives_502_connect() {
    let s = setup(&format!("http://{}", closed_port()), "").await;
    assert_fault_counted(
        &s,
        "GET",
        (502, "upstream_connect_refused"),
        "connect_refused",
        "refused",
    )
    .await;
}

#[tokio::test]
async fn a_gateway_stalling_past_upstream_response_gives_504() {
    let fake = Fake::start(Behave::Stall).await;
    let s = setup(&fake.url(), "[timeouts]\nupstream_response = \"1s\"\n").await;
    assert_fault_counted(
        &s,
        "GET",
        (504, "upstream_response_timeout"),
        "response_timeout",
        "stall",
    )
    .await;
}

/// Read a raw response until the server closes (bounded): head and the
/// number of body bytes that arrived.
async fn read_cut_response(addr: SocketAddr) -> (RawReply, usize) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!(
            "GET /stream HTTP/1.1\r\nhost: gw\r\nauthorization: {}\r\n\r\n",
            bearer(ALICE)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, read_until_close(&mut c, &mut out))
        .await
        .expect("the client's connection is cut, not left hanging");
    let text = String::from_utf8_lossy(&out).into_owned();
    let body_at = text.find("\r\n\r\n").expect("a response head") + 4;
    (RawReply::parse(&text), out.len() - body_at)
}

#[tokio::test]
async fn a_reset_mid_body_cuts_the_clients_connection_and_is_counted() {
    let fake = Fake::start(Behave::ResetMidBody).await;
    let s = setup(&fake.url(), "").await;
    let (r, got) = read_cut_response(s.server.addr).await;
    assert_eq!(r.status, 200, "the head had already gone out");
    assert!(is_uuid_v7(r.header("x-request-id").unwrap()));
    assert_eq!(r.header("content-length"), Some("100000"));
    assert!(got < 100_000, "the body is cut short ({got} bytes)");
    assert_eq!(resets_once_counted(&s).await, 1.0);
    others_still_served(&s, "reset mid-body").await;
}

#[tokio::test]
async fn a_reset_mid_stream_cuts_a_chunked_response_and_is_counted() {
    let fake = Fake::start(Behave::ResetMidChunked).await;
    let s = setup(&fake.url(), "").await;
    let (r, _) = read_cut_response(s.server.addr).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body.contains("data: first"), "streamed before the reset");
    assert!(!r.body.ends_with("0\r\n\r\n"), "no clean end of stream");
    assert_eq!(resets_once_counted(&s).await, 1.0);
    others_still_served(&s, "reset mid-stream").await;
}

/// alice's WebSocket through clawgate to her (fake) gateway, and the
/// handshake's response.
async fn alice_websocket(
    s: &Setup,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let tcp = TcpStream::connect(s.server.addr).await.unwrap();
    let mut req = format!("ws://{}/ws", s.server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-clawgate-token", HeaderValue::from_static(ALICE));
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_websocket_dropped_by_the_gateway_closes_with_1011_naming_the_request_id() {
    let fake = Fake::start(Behave::WebSocketThenReset).await;
    let s = setup(&fake.url(), "").await;
    let (mut ws, resp) = alice_websocket(&s).await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    ws.send(Message::text("hi")).await.unwrap();
    let ok = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(ok.unwrap().unwrap(), Message::text("ok"));
    let gauge = r#"clawgate_websockets_open{member="alice"}"#;
    assert_eq!(sample(&metrics(s.server.admin_addr).await, gauge), 1.0);

    ws.send(Message::text("bye")).await.unwrap();
    let mut close = None;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(c)) => close = c,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the client sees the connection end");
    let close = close.expect("a close frame before the end");
    assert_eq!(close.code, CloseCode::Error, "1011");
    assert!(close.reason.contains("upstream_reset"), "{}", close.reason);
    assert!(close.reason.contains(&rid), "{}", close.reason);

    let open = sample_reaches(s.server.admin_addr, gauge, 0.0).await;
    assert_eq!(open, 0.0, "the open-WebSockets gauge returns to 0");
    assert_eq!(upstream_errors(&s, "reset").await, 1.0);
    let line = s
        .cfg
        .websocket_line(&rid)
        .await
        .expect("a websocket access-log line");
    assert_eq!(line["decision"], "error");
    assert_eq!(line["reason"], "upstream_reset");
    others_still_served(&s, "WebSocket reset").await;
}

#[tokio::test]
async fn a_gateway_ending_the_tcp_connection_after_the_clients_close_frame_is_no_fault() {
    let fake = Fake::start(Behave::WebSocketCloseWithoutEcho).await;
    let s = setup(&fake.url(), "").await;
    let (mut ws, _) = alice_websocket(&s).await;
    ws.send(Message::Close(None)).await.unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(Some(c))) = m {
                panic!("clawgate closed a client-initiated close with {c}");
            }
            if m.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection ends");
    let gauge = r#"clawgate_websockets_open{member="alice"}"#;
    assert_eq!(sample_reaches(s.server.admin_addr, gauge, 0.0).await, 0.0);
    // A counter's series appears on its first count: absent and 0 both
    // mean no reset was counted.
    let m = metrics(s.server.admin_addr).await;
    let resets = try_sample(&m, &upstream_errors_series("reset")).unwrap_or(0.0);
    assert_eq!(resets, 0.0, "{m}");
}

#[tokio::test]
async fn the_proxy_recovers_when_the_gateway_comes_back_on_the_same_port() {
    let fake = Fake::start(Behave::ResetBeforeHead).await;
    let port = fake.addr;
    let s = setup(&fake.url(), "").await;
    assert_fault(&s, "GET", 502, "upstream_reset").await;
    drop(fake);
    assert_fault(&s, "GET", 502, "upstream_connect_refused").await;

    let back = Upstream::start_on(&port.to_string()).await;
    let r = get(s.server.addr, "/back", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["path"], "/back");
    assert_eq!(back.count(), 1);
    // Faults counted by kind; recovery adds none.
    assert_eq!(upstream_errors(&s, "reset").await, 1.0);
    assert_eq!(upstream_errors(&s, "connect_refused").await, 1.0);
    others_still_served(&s, "recovery").await;
}
