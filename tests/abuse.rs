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
async fn closed_without_answer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// True when the server still holds the connection open (no EOF, no data).
async fn still_open(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf))
        .await
        .is_err()
}

/// A connection that has asked once without a credential (401) and holds
/// its unauthenticated slot: its answer proves the proxy has counted it.
async fn probed(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        read_until_head_end(&mut s, &mut head),
    )
    .await
    .expect("a 401 within 5 s");
    let text = String::from_utf8_lossy(&head).into_owned();
    let reply = RawReply::parse(&text);
    assert_eq!(reply.status, 401, "{text}");
    // Read the body too, so the socket has nothing left but its close.
    let length: usize = reply.header("content-length").unwrap().parse().unwrap();
    let mut rest = vec![0u8; length - reply.body.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut rest))
        .await
        .expect("the 401's body within 5 s")
        .unwrap();
    s
}

const CAP: usize = 4;

#[tokio::test]
async fn at_the_unauthenticated_cap_the_oldest_connection_makes_way_and_a_member_passes() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base(&format!("[limits]\nmax_unauthenticated_per_ip = {CAP}\n"));
    let server = start(&cfg).await;
    // The cap's worth of unauthenticated connections, counted in order.
    let mut flood = Vec::new();
    for _ in 0..CAP {
        flood.push(probed(server.addr).await);
    }
    // Then idle ones that never send a byte: each closes the oldest.
    for i in 0..6 {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
        assert!(
            closed_without_answer(&mut flood[i]).await,
            "connection {i} (the oldest) is closed when connection {} arrives",
            CAP + i
        );
    }
    for (i, s) in flood.iter_mut().enumerate().skip(6) {
        assert!(still_open(s).await, "connection {i} is within the cap");
    }

    // A member on a new connection from the same address is served; it
    // took the place of the oldest flood connection.
    let mut alice = keep_alive(server.addr).await;
    let r = alice.send_request(member_request("/a", ALICE, None)).await;
    assert_eq!(r.expect("alice is answered").status(), 200);
    assert!(closed_without_answer(&mut flood[6]).await);
    // Once identified it holds no slot, so more flood cannot evict it.
    for _ in 0..CAP {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    for i in 7..flood.len() - CAP {
        assert!(closed_without_answer(&mut flood[i]).await, "connection {i}");
    }
    let r = alice.send_request(member_request("/b", ALICE, None)).await;
    assert_eq!(r.expect("alice's connection survived").status(), 200);
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
    let header =
        clawgate::net::proxy_protocol::encode("10.1.2.3:4444".parse().unwrap(), server.addr);
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
