//! HTTP/2 floods against the cleartext (h2c prior-knowledge) listener: a
//! client that opens streams and cancels them at once (the "rapid reset"
//! pattern, CVE-2023-44487), and one that opens far more concurrent streams
//! than `max_concurrent_streams`. Each must leave the proxy serving a
//! member on another connection, and the cancelled requests must not pile
//! up at the gateway: past 100 cancels that are most of its requests, a
//! connection is shut down gracefully (GOAWAY), as Envoy does.
//!
//! Every loop is bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

const ALICE: &str = "alice-h2-flood-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

async fn still_serving(server: &clawgate::server::Server, after: &str) {
    let r = tokio::time::timeout(
        WAIT,
        get(
            server.addr,
            "/still-serving",
            &[("authorization", &format!("Bearer {ALICE}"))],
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("after {after}: a member request hung"));
    assert_eq!(r.status, 200, "after {after}: the proxy stopped serving");
}

fn request(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri(format!("http://gw.test{path}"))
        .header("authorization", format!("Bearer {ALICE}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn rapid_reset_streams_leave_the_proxy_serving() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c prior knowledge is spoken");
    tokio::spawn(conn);

    const STREAMS: usize = 2_000;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while sent < STREAMS && Instant::now() < deadline {
        // The server may end the connection (GOAWAY): that is a pass too.
        if tokio::time::timeout(WAIT, send.ready())
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
        let pending = send.send_request(request(&format!("/reset/{sent}")));
        // Let the HEADERS go out, then cancel the stream.
        let _ = tokio::time::timeout(Duration::from_micros(50), pending).await;
        sent += 1;
    }
    still_serving(&server, "rapid reset").await;
    let seen = up.count();
    eprintln!("rapid reset: {sent} streams sent, {seen} reached the gateway");
    // Past 100 cancels, most of the streams, the connection is shut down
    // (GOAWAY): without that the whole 2,000 went through, and more than
    // half of them became gateway requests on fresh gateway connections.
    assert!(
        sent < 1_000,
        "the flooding connection was not closed ({sent} streams)"
    );
    assert!(
        seen < 600,
        "{seen} gateway requests for {sent} cancelled streams"
    );
    let m = metrics(server.admin_addr).await;
    assert!(
        m.contains("clawgate_connections_open"),
        "metrics still served"
    );
}

#[tokio::test]
async fn more_concurrent_streams_than_allowed_are_queued_not_served_at_once() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c prior knowledge is spoken");
    tokio::spawn(conn);

    // 1,000 requests at once on one connection (the server allows 256
    // concurrent streams): all answered, none refused by the proxy.
    let mut tasks = Vec::new();
    for i in 0..1_000 {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            send.ready().await.ok()?;
            let resp = send
                .send_request(request(&format!("/many/{i}")))
                .await
                .ok()?;
            Some(resp.status().as_u16())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(Some(200))) = tokio::time::timeout(Duration::from_secs(30), t).await {
            ok += 1;
        }
    }
    assert_eq!(ok, 1_000, "every queued stream answered 200");
    assert_eq!(up.count(), 1_000);
    still_serving(&server, "1,000 concurrent streams").await;
}
