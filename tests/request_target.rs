//! Malformed and proxy-style request targets: clawgate is a reverse proxy,
//! never an open one, and refuses ambiguous requests before identifying
//! anyone. Raw TCP where a well-behaved client could not send the request.

mod common;

use std::time::Duration;

use common::*;

const ALICE: &str = "alice-token-0123456789";
/// Bound for reading a raw reply; the server closes sooner (Connection: close).
const WAIT: Duration = Duration::from_secs(5);

async fn setup_with(extra_toml: &str) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base(extra_toml);
    let server = start(&cfg).await;
    (up, cfg, server)
}

async fn setup() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    setup_with("").await
}

/// Send `head` (request line + headers, no final blank line) and parse the reply.
async fn send_raw(server: &clawgate::runtime::server::Server, head: &str) -> RawReply {
    let text = raw(
        server.addr,
        format!("{head}Connection: close\r\n\r\n").as_bytes(),
        WAIT,
    )
    .await;
    RawReply::parse(&text)
}

/// A normal member request still works (the proxy kept serving).
async fn still_serving(server: &clawgate::runtime::server::Server) {
    let r = get(
        server.addr,
        "/after",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/after");
}

#[tokio::test]
async fn absolute_form_request_gets_400_and_the_proxy_keeps_serving() {
    let (up, _cfg, server) = setup().await;
    let r = send_raw(
        &server,
        &format!(
            "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer {ALICE}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let b = r.json();
    assert_eq!(b["reason"], "absolute_form");
    assert_eq!(b["request_id"], r.header("x-request-id").unwrap());
    assert_eq!(
        up.count(),
        0,
        "an absolute-form request must not be proxied"
    );
    still_serving(&server).await;
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn connect_gets_405_and_the_proxy_keeps_serving() {
    let (up, _cfg, server) = setup().await;
    let r = send_raw(
        &server,
        &format!(
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nAuthorization: Bearer {ALICE}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(r.header("allow").is_some_and(|a| !a.contains("CONNECT")));
    let b = r.json();
    assert_eq!(b["reason"], "connect_refused");
    assert_eq!(b["request_id"], r.header("x-request-id").unwrap());
    assert_eq!(up.count(), 0);
    still_serving(&server).await;
}

#[tokio::test]
async fn http11_request_without_host_gets_400() {
    let (up, _cfg, server) = setup().await;
    let r = send_raw(
        &server,
        &format!("GET / HTTP/1.1\r\nAuthorization: Bearer {ALICE}\r\n"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["reason"], "missing_host");
    assert!(is_uuid_v7(r.header("x-request-id").unwrap()));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn two_host_headers_get_400() {
    let (up, _cfg, server) = setup().await;
    let r = send_raw(
        &server,
        &format!(
            "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nAuthorization: Bearer {ALICE}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["reason"], "duplicate_host");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn two_origin_headers_get_400() {
    let (up, _cfg, server) = setup().await;
    let r = send_raw(
        &server,
        &format!(
            "GET / HTTP/1.1\r\nHost: gw\r\nOrigin: https://alice.example.com\r\nOrigin: https://evil.example.net\r\nAuthorization: Bearer {ALICE}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["reason"], "duplicate_origin");
    assert_eq!(up.count(), 0);
}

const SMALL_BODIES: &str = "[limits]\nmax_body_bytes = 1024\n";

#[tokio::test]
async fn content_length_over_max_body_bytes_gets_413() {
    let (up, cfg, server) = setup_with(SMALL_BODIES).await;
    let r = request(
        server.addr,
        "POST",
        "/upload",
        &[("authorization", &format!("Bearer {ALICE}"))],
        &"x".repeat(1025),
    )
    .await;
    assert_eq!(r.status, 413);
    let b = r.json();
    assert_eq!(b["reason"], "body_too_large");
    assert_eq!(b["request_id"], r.request_id());
    assert_eq!(up.count(), 0);
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["status"], 413);
}

#[tokio::test]
async fn body_of_exactly_max_body_bytes_is_forwarded() {
    let (up, _cfg, server) = setup_with(SMALL_BODIES).await;
    let r = request(
        server.addr,
        "POST",
        "/upload",
        &[("authorization", &format!("Bearer {ALICE}"))],
        &"x".repeat(1024),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 1024);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn chunked_body_over_max_body_bytes_gets_413() {
    let (_up, _cfg, server) = setup_with(SMALL_BODIES).await;
    let chunk = "x".repeat(600);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {ALICE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = RawReply::parse(&raw(server.addr, req.as_bytes(), WAIT).await);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["reason"], "body_too_large");
}

#[tokio::test]
async fn every_response_carries_a_uuid_v7_request_id() {
    let (_up, _cfg, server) = setup_with(SMALL_BODIES).await;
    let auth = format!("Bearer {ALICE}");
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut note = |what: &str, id: Option<&str>| {
        let id = id.unwrap_or_else(|| panic!("{what}: no x-request-id"));
        ids.push((what.to_string(), id.to_string()));
    };

    let r = get(server.addr, "/", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    note("200", r.header("x-request-id"));
    let r = get(server.addr, "/status/404", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 404, "the upstream's own error");
    note("upstream 404", r.header("x-request-id"));
    let r = get(server.addr, "/", &[]).await;
    assert_eq!(r.status, 401);
    note("401", r.header("x-request-id"));
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("origin", "https://evil.example.net"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    note("403", r.header("x-request-id"));
    let r = request(
        server.addr,
        "POST",
        "/",
        &[("authorization", &auth)],
        &"x".repeat(2000),
    )
    .await;
    assert_eq!(r.status, 413);
    note("413", r.header("x-request-id"));
    let r = send_raw(
        &server,
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    note("400 absolute-form", r.header("x-request-id"));
    let r = send_raw(
        &server,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    note("405", r.header("x-request-id"));

    for (what, id) in &ids {
        assert!(is_uuid_v7(id), "{what}: x-request-id {id} is not a UUIDv7");
    }
    let mut unique: Vec<&String> = ids.iter().map(|(_, id)| id).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request IDs repeat: {:?}", ids);
}

/// The request ID is assigned before any refusal: one named by a trusted
/// proxy in front is kept even for a target refused before anyone is
/// identified, so the proxy's log and clawgate's meet on it.
#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept_on_the_earliest_refusals() {
    let (_up, _cfg, server) =
        setup_with("[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
    for (head, status) in [
        ("OPTIONS * HTTP/1.1\r\nHost: x\r\n", 400),
        ("GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n", 400),
        (
            "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n",
            405,
        ),
        ("GET /a/../b HTTP/1.1\r\nHost: x\r\n", 400),
    ] {
        let r = send_raw(&server, &format!("{head}X-Request-Id: edge-7f3a\r\n")).await;
        assert_eq!(r.status, status, "{head}");
        assert_eq!(r.header("x-request-id"), Some("edge-7f3a"), "{head}");
    }
    // From an untrusted peer the same header is not taken: a fresh UUIDv7.
    let (_up2, _cfg2, plain) = setup().await;
    let r = send_raw(
        &plain,
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nX-Request-Id: edge-7f3a\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(is_uuid_v7(r.header("x-request-id").unwrap()));
}
