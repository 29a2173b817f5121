//! Abusive callers are limited per address without touching members:
//! failed-authentication blocks (429 + Retry-After), a cap on idle
//! unauthenticated connections, and PROXY protocol v2 from trusted
//! balancers only.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "alice-abuse-token-000";

#[tokio::test]
async fn repeated_bad_tokens_get_429_but_a_valid_member_still_passes() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base("[limits]\nauth_failures_per_minute = 3\nauth_block = \"30s\"\n");
    let server = start(&cfg).await;
    for _ in 0..3 {
        let r = get(server.addr, "/", &[("authorization", "Bearer guess")]).await;
        assert_eq!(r.status, 401);
    }
    let r = get(server.addr, "/", &[("authorization", "Bearer guess")]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["reason"], "too_many_auth_failures");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    // A request with a body is served by hyper, not the lean loop: the
    // same answer, Retry-After included.
    let r = request(
        server.addr,
        "POST",
        "/",
        &[("authorization", "Bearer guess")],
        "x",
    )
    .await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let auth = format!("Bearer {ALICE}");
    assert_eq!(
        get(server.addr, "/", &[("authorization", &auth)])
            .await
            .status,
        200
    );
}

/// True when the server closed the connection without answering.
async fn closed_without_answer(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn idle_unauthenticated_connections_are_capped_per_address() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base("[limits]\nmax_unauthenticated_per_ip = 2\n");
    let server = start(&cfg).await;
    let a = TcpStream::connect(server.addr).await.unwrap();
    let _b = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_without_answer(c).await,
        "third idle connection must be closed"
    );
    // An identified request frees its connection's slot.
    let mut a = a;
    a.write_all(
        format!("GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ALICE}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), a.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let auth = format!("Bearer {ALICE}");
    assert_eq!(
        get(server.addr, "/", &[("authorization", &auth)])
            .await
            .status,
        200
    );
}

fn proxy_config(up: &Upstream) -> ConfigDir {
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE).set("EGRESS_CIDRS", "10.0.0.0/8")],
    );
    cfg.write_base("[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true\n");
    cfg
}

#[tokio::test]
async fn proxy_protocol_v2_source_becomes_the_client_address() {
    let up = Upstream::start().await;
    let cfg = proxy_config(&up);
    let server = start(&cfg).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let header = clawgate::proxy_protocol::encode("10.1.2.3:4444".parse().unwrap(), server.addr);
    s.write_all(&header).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {ALICE}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"x-forwarded-for\":[\"10.1.2.3\"]"),
        "{text}"
    );
}

#[tokio::test]
async fn a_connection_without_the_proxy_header_is_closed() {
    let up = Upstream::start().await;
    let cfg = proxy_config(&up);
    let server = start(&cfg).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!("GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ALICE}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(
        !String::from_utf8_lossy(&out).contains("200"),
        "request without PROXY header was served"
    );
    assert_eq!(up.count(), 0);
}
