//! Server-sent events are streamed, not buffered: the first event reaches
//! the client while the upstream is still holding the stream open, over
//! HTTP/1.1 and over h2. At SIGTERM an open stream runs on until it ends
//! or `timeouts.drain` is up; then it is cut so the client can tell.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::tls::{alpn, send_get, tls_connect, Pki};
use common::*;
use http::{Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const ALICE: &str = "alice-token-0123456789";

/// Read body frames until `text` has arrived (bounded by `within`);
/// appends to `got`; panics saying what did arrive if it does not.
async fn read_until(body: &mut Incoming, got: &mut String, text: &str, within: Duration) {
    let read = async {
        while !got.contains(text) {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        got.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Some(Err(e)) => panic!("body error after {got:?}: {e}"),
                None => panic!("stream ended before {text:?}; got {got:?}"),
            }
        }
    };
    if tokio::time::timeout(within, read).await.is_err() {
        panic!("{text:?} did not arrive within {within:?}; got {got:?}");
    }
}

/// The first event arrives while the upstream holds the stream; after
/// `release_sse()` the last one arrives and the stream ends.
async fn assert_streamed(up: &Upstream, resp: Response<Incoming>) {
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp.into_body();
    let mut got = String::new();
    // The upstream holds `data: last` for up to 10 s unless released: a
    // buffering proxy would show nothing before that.
    read_until(
        &mut body,
        &mut got,
        "data: first\n\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(!got.contains("data: last"), "released too early: {got:?}");
    up.release_sse();
    read_until(
        &mut body,
        &mut got,
        "data: last\n\n",
        Duration::from_secs(10),
    )
    .await;
    // h2 may close the stream with an empty DATA frame: nothing else may come.
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the stream ends within 10s after the last event")
        .expect("the stream ends cleanly")
        .to_bytes();
    assert!(
        rest.is_empty(),
        "unexpected data after the last event: {rest:?}"
    );
    assert_eq!(got, "data: first\n\ndata: last\n\n");
}

#[tokio::test]
async fn sse_first_event_reaches_an_http1_client_before_the_upstream_finishes() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("http://{}/sse", server.addr))
        .header("x-clawgate-token", ALICE)
        .header("accept", "text/event-stream")
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response headers within 10s")
        .expect("request succeeds at the HTTP level");
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_streamed(&up, resp).await;
}

#[tokio::test]
async fn sse_first_event_reaches_an_h2_client_before_the_upstream_finishes() {
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
        .expect("TLS handshake");
    assert_eq!(alpn(&tls).as_deref(), Some("h2"));
    let auth = format!("Bearer {ALICE}");
    let resp = send_get(
        tls,
        Version::HTTP_2,
        "/sse",
        &[("authorization", &auth), ("accept", "text/event-stream")],
    )
    .await
    .expect("request succeeds at the HTTP level");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_streamed(&up, resp).await;
}

/// Open an SSE stream over HTTP/1.1 and read its first event.
async fn open_stream(server: &clawgate::runtime::server::Server) -> Incoming {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("http://{}/sse", server.addr))
        .header("x-clawgate-token", ALICE)
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = String::new();
    read_until(
        &mut body,
        &mut got,
        "data: first\n\n",
        Duration::from_secs(5),
    )
    .await;
    body
}

/// Does the body end (cleanly or not) without more data, within `within`?
async fn ends_without_more_data(body: &mut Incoming, within: Duration) -> bool {
    let ended = async {
        loop {
            match body.frame().await {
                None | Some(Err(_)) => return true,
                Some(Ok(f)) if f.data_ref().is_some_and(|d| !d.is_empty()) => return false,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(within, ended).await.unwrap_or(false)
}

#[tokio::test]
async fn a_revoked_members_open_event_stream_ends_on_reload() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut body = open_stream(&server).await;
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("ORIGINS", "https://only.example.com"));
    assert_eq!(server.reload().unwrap().revoked, 1);
    assert!(ends_without_more_data(&mut body, Duration::from_secs(2)).await);
    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            "clawgate_revoked_connections_total{member=\"alice\",reason=\"origin_missing\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn an_unaffected_event_stream_survives_a_reload() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut body = open_stream(&server).await;
    assert_eq!(server.reload().unwrap().revoked, 0);
    up.release_sse();
    let mut got = String::new();
    read_until(
        &mut body,
        &mut got,
        "data: last\n\n",
        Duration::from_secs(5),
    )
    .await;
}

/// A raw-TCP gateway that answers every request with an event stream:
/// `data: N` every 100 ms, and the last chunk after `events` of them
/// (never, if `None`).
async fn event_gateway(events: Option<usize>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                read_until_head_end(&mut s, &mut head).await;
                if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    return; // clawgate's startup probe sends nothing
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                for n in 0.. {
                    if events.is_some_and(|e| n == e) {
                        let _ = s.write_all(b"0\r\n\r\n").await;
                        break;
                    }
                    let event = format!("data: {n}\n\n");
                    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
            });
        }
    });
    url
}

/// An HTTP/1.1 connection with an open event stream whose first event
/// has arrived; what arrived so far (head included) is returned with it.
async fn open_h1_stream(addr: std::net::SocketAddr) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /events HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {ALICE}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let first = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("data: 0\n\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the first event: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first event arrives");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    (s, got)
}

/// The `data: N` numbers in what arrived.
fn events(got: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(got)
        .lines()
        .filter_map(|l| l.strip_prefix("data: ")?.parse().ok())
        .collect()
}

#[tokio::test]
async fn sigterm_lets_an_open_event_stream_run_to_its_own_end() {
    // 30 events, 3 s in all: well inside the 30 s drain.
    let gw = event_gateway(Some(30)).await;
    let cfg = ConfigDir::new(&[("prod", gw)], &[MemberSpec::new("alice", ALICE)]);
    let mut p = Proc::start(&cfg);
    let (mut s, mut got) = open_h1_stream(p.addr).await;
    p.signal("-TERM");
    p.wait_log("draining", Duration::from_secs(5));
    let before = events(&got).len();
    tokio::time::timeout(Duration::from_secs(15), read_until_close(&mut s, &mut got))
        .await
        .expect("the stream ends within its own 3 s");
    let seen = events(&got);
    assert_eq!(
        seen,
        (0..30).collect::<Vec<_>>(),
        "every event, in order ({before} before SIGTERM)"
    );
    assert!(
        got.ends_with(b"\r\n0\r\n\r\n"),
        "a clean end: the last chunk; got {:?}",
        String::from_utf8_lossy(&got[got.len().saturating_sub(60)..])
    );
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn the_drain_deadline_cuts_an_endless_event_stream_so_the_client_can_tell() {
    let gw = event_gateway(None).await;
    let cfg = ConfigDir::new(&[("prod", gw)], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base("[timeouts]\ndrain = \"1500ms\"\n");
    let mut p = Proc::start(&cfg);
    let (mut s, mut got) = open_h1_stream(p.addr).await;

    // The same over h2.
    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let req = http::Request::get("http://gw/events")
        .header("authorization", format!("Bearer {ALICE}"))
        .body(())
        .unwrap();
    let (resp, _) = h2.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let h2_read = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            match body.data().await {
                Some(Ok(d)) => {
                    let _ = body.flow_control().release_capacity(d.len());
                    got.extend_from_slice(&d);
                }
                Some(Err(e)) => return (got, Some(e)),
                None => return (got, None),
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("-TERM");
    let term = std::time::Instant::now();
    p.wait_log("draining", Duration::from_secs(5));
    let before = events(&got).len();
    tokio::time::timeout(Duration::from_secs(10), read_until_close(&mut s, &mut got))
        .await
        .expect("the connection is closed soon after the deadline");
    let cut_after = term.elapsed();
    let tail = String::from_utf8_lossy(&got[got.len().saturating_sub(60)..]).into_owned();
    assert!(
        !got.ends_with(b"0\r\n\r\n"),
        "cut, not ended: no last chunk; got {tail:?}"
    );
    assert!(
        cut_after >= Duration::from_millis(1200),
        "ran until the deadline, not {cut_after:?}"
    );
    assert!(
        events(&got).len() >= before + 8,
        "events kept coming after SIGTERM: {before} before, {} in all",
        events(&got).len()
    );

    let (h2_got, err) = tokio::time::timeout(Duration::from_secs(10), h2_read)
        .await
        .expect("the h2 stream ends")
        .unwrap();
    assert!(
        events(&h2_got).len() >= 10,
        "h2 events kept coming: {}",
        events(&h2_got).len()
    );
    let err = err.expect("the h2 stream is reset, not ended with END_STREAM");
    assert!(
        err.is_reset() && err.reason() == Some(h2::Reason::INTERNAL_ERROR),
        "an RST_STREAM, not a lost connection: {err:?}"
    );
    p.wait_log("drain deadline", Duration::from_secs(5));
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}
