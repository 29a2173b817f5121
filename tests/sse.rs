//! Server-sent events are streamed, not buffered: the first event reaches
//! the client while the upstream is still holding the stream open, over
//! HTTP/1.1 and over h2.

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
async fn open_stream(server: &clawgate::server::Server) -> Incoming {
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
