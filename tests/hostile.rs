//! Hostile input over raw TCP (and TLS where it matters): every case gets a
//! clear 4xx, or a closed connection where HTTP allows nothing else, and a
//! normal member request on a fresh connection still gets 200 afterwards.
//! Where hyper answers before clawgate sees the request (400, 414, 431),
//! its status is accepted. Smuggling cases count what the upstream saw.
//!
//! Cases already covered elsewhere are listed so the count is complete.
//!
//! | #  | case                                                        | answer                      | where |
//! |----|-------------------------------------------------------------|-----------------------------|-------|
//! |  1 | request line (URI) over max_header_bytes                    | 414/431 (hyper)             | here  |
//! |  2 | one header value over max_header_bytes                      | 431 (hyper)                 | here  |
//! |  3 | many headers adding up past max_header_bytes                | 431 (hyper)                 | here  |
//! |  4 | 101 headers (max 100)                                       | 431 (hyper)                 | here  |
//! |  5 | NUL byte in a header value                                  | 400 (hyper)                 | here  |
//! |  6 | bare CR in a header value                                   | 400 (hyper)                 | here  |
//! |  7 | space inside a header name                                  | 400 (hyper)                 | here  |
//! |  8 | whitespace between header name and colon                    | 400 (hyper)                 | here  |
//! |  9 | non-token byte in the method                                | 400 (hyper)                 | here  |
//! | 10 | unknown HTTP version                                        | 400/505 (hyper)             | here  |
//! | 11 | obs-fold continuation line                                  | 400 (hyper)                 | here  |
//! | 12 | binary garbage instead of a request                         | 400 or closed               | here  |
//! | 13 | CL + TE, smuggled request in the body                       | TE wins, closed; 1 upstream request | here |
//! | 14 | TE + CL (reverse order), smuggled request in the body       | TE wins, closed; 1 upstream request | here |
//! | 15 | two different Content-Length headers                        | 400 (hyper)                 | here  |
//! | 16 | `Content-Length: 5, 6` (list with different values)         | 400 (hyper)                 | here  |
//! | 17 | Content-Length `+5`, `-1`, `0x5`                            | 400 (hyper)                 | here  |
//! | 18 | `Transfer-Encoding: chunked, identity`                      | 400 (hyper)                 | here  |
//! | 19 | `Transfer-Encoding: identity` / `xchunked`                  | 400 (hyper)                 | here  |
//! | 20 | Transfer-Encoding split over an obs-fold                    | 400 (hyper)                 | here  |
//! | 21 | Transfer-Encoding on HTTP/1.0                               | 400 (hyper)                 | here  |
//! | 22 | two identical Content-Length headers                        | 200, upstream sees one CL   | here  |
//! | 23 | Content-Length shorter than the body: rest is a 2nd request | 401 for the 2nd, upstream sees 1 | here |
//! | 24 | invalid chunk size                                          | 400                         | here  |
//! | 25 | chunk size overflowing u64                                  | 400                         | here  |
//! | 26 | chunk data without its CRLF                                 | 400                         | here  |
//! | 27 | chunk extension over hyper's limit                          | 400                         | here  |
//! | 28 | chunked body cut short, client half-closes                  | 400 or closed               | here  |
//! | 29 | Content-Length body cut short, client half-closes           | 400 or closed               | here  |
//! | 30 | one chunk declared larger than max_body_bytes               | 413                         | here  |
//! | 31 | Content-Length over max_body_bytes                          | 413                         | request_target.rs |
//! | 32 | chunked body over max_body_bytes                            | 413                         | request_target.rs |
//! | 33 | absolute-form request                                       | 400 absolute_form           | request_target.rs |
//! | 34 | CONNECT                                                     | 405                         | request_target.rs |
//! | 35 | authority-form request target on GET                        | 400 bad_target              | here  |
//! | 36 | asterisk-form (`OPTIONS *`)                                 | 400 bad_target              | here  |
//! | 37 | Host missing on HTTP/1.1                                    | 400 missing_host            | request_target.rs |
//! | 38 | two Host headers                                            | 400 duplicate_host          | request_target.rs |
//! | 39 | h2 `:authority` and `Host` disagree                         | 400 host_authority_mismatch | here  |
//! | 40 | Host that is not `host[:port]` (userinfo, path, spaces)     | 400 bad_host                | here  |
//! | 41 | two Origin headers                                          | 400 duplicate_origin        | request_target.rs |
//! | 42 | Origin `null`                                               | 403 + diff                  | here  |
//! | 43 | Origin with userinfo                                        | 403 + diff                  | here  |
//! | 44 | Origin with a raw IDN (UTF-8) host                          | 403 + diff (punycode hint)  | here  |
//! | 45 | Origin in punycode, allowed                                 | 200                         | here  |
//! | 46 | Origin in punycode, not allowed                             | 403 + diff                  | here  |
//! | 47 | Origin in upper case                                        | 200 (normalised)            | here  |
//! | 48 | Origin with its default port spelled out                    | 200 (normalised)            | here  |
//! | 49 | Origin with a non-default port                              | 403 + diff (port)           | here  |
//! | 50 | Origin with a trailing dot                                  | 403 + diff                  | here  |
//! | 51 | Origin of 10 000 bytes                                      | 403 + diff (too long)       | here  |
//! | 52 | Origin with a path                                          | 403 + diff (trailing path)  | here  |
//! | 53 | Origin with non-UTF-8 bytes                                 | 403 + diff, JSON body       | here  |
//! | 54 | Origin with port 0 / 65536 / letters                        | 403 + diff                  | here  |
//! | 55 | Origin without a scheme, or `*`                             | 403 + diff                  | here  |
//! | 56 | Origin `ws://` where `http://` is allowed                   | 403 + diff (scheme)         | here  |
//! | 57 | X-Forwarded-For garbage from a trusted peer                 | 400                         | hygiene.rs |
//! | 58 | X-Forwarded-For over 64 hops, from a trusted peer           | 400                         | here  |
//! | 59 | X-Forwarded-For with obs-text / zone ID / bad port (trusted)| 400                         | here  |
//! | 60 | X-Forwarded-For of only commas from a trusted peer          | 200, client = peer          | here  |
//! | 61 | X-Forwarded-For garbage from an untrusted peer              | 200, overwritten upstream   | here  |
//! | 62 | forged identity/forwarding headers with a valid token       | stripped                    | hygiene.rs |
//! | 63 | forged identity header without any credential               | 401, upstream untouched     | here  |
//! | 64 | forged identity (duplicates, odd case) with bob's token     | upstream sees bob only      | here  |
//! | 65 | Authorization for bob + X-Clawgate-Token of alice           | bob; both stripped          | here  |
//! | 66 | token with an inner space                                   | 401 bad_token               | here  |
//! | 67 | `Bearer<TAB>token`                                          | 401 no_credentials          | here  |
//! | 68 | token with unicode                                          | 401 bad_token               | here  |
//! | 69 | empty bearer token                                          | 401 no_credentials          | here  |
//! | 70 | token of 513 bytes / 32 KiB                                 | 401 bad_token               | here  |
//! | 71 | prefix / extension / case change of a valid token           | 401 bad_token               | here  |
//! | 72 | X-Clawgate-Token with an inner space                        | 401 bad_token               | here  |
//! | 73 | NUL in a token                                              | 400 (hyper)                 | here  |
//! | 74 | valid token padded with spaces                              | 200 (trimmed)               | here  |
//! | 75 | repeated bad tokens                                         | 429 + Retry-After           | abuse.rs |
//! | 76 | WebSocket upgrade without Sec-WebSocket-Key                 | upstream's 400, no hang     | here  |
//! | 77 | WebSocket upgrade with the wrong version                    | answered, no hang           | here  |
//! | 78 | WebSocket upgrade on POST with a body                       | answered, no hang           | here  |
//! | 79 | `Upgrade` without `Connection: upgrade`                     | 502 unrequested_upgrade     | here  |
//! | 80 | `Upgrade: h2c` (h2c smuggling)                              | ignored: 200, no Upgrade upstream | here |
//! | 81 | WebSocket upgrade without credentials                       | 401, upstream untouched     | here  |
//! | 82 | WebSocket upgrade from a disallowed Origin                  | 403 before any 101          | websocket.rs |
//! | 83 | TLS client cert from an unknown CA (required)               | handshake refused           | tls.rs |
//! | 84 | TLS client cert from an unknown CA (optional)               | handshake refused           | here  |
//! | 85 | TLS client cert expired (required and optional)             | handshake refused           | here  |
//! | 86 | TLS client cert not yet valid                               | handshake refused           | here  |
//! | 87 | TLS client cert without the clientAuth key usage            | handshake refused           | here  |
//! | 88 | plain HTTP to the TLS port                                  | closed                      | here  |
//! | 89 | garbage instead of a ClientHello                            | closed                      | here  |
//! | 90 | no client cert when required                                | handshake refused           | tls.rs |
//!
//! 90 cases: 77 here, 13 in the files named.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::tls::{dns_san, https_get, tls_connect, ClientCert, Pki};
use common::*;
use http::Version;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "alice-hostile-token-0123456789";
const BOB: &str = "bob-hostile-token-9876543210";
/// Bound for one exchange: an answer or a close must come well before.
const WAIT: Duration = Duration::from_secs(10);

/// Small bodies (so limits are cheap to reach) and no failed-auth block
/// (the token cases send hundreds of bad tokens from 127.0.0.1).
const LIMITS: &str = "[limits]\nmax_body_bytes = 1024\nauth_failures_per_minute = 100000\n";
const TRUSTED_LOOPBACK: &str = "[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

struct Hostile {
    up: Upstream,
    _cfg: ConfigDir,
    server: clawgate::server::Server,
}

fn members() -> Vec<MemberSpec> {
    vec![
        MemberSpec::new("alice", ALICE).set(
            "ORIGINS",
            "none https://alice.example.com http://127.0.0.1:3000 https://xn--bcher-kva.example",
        ),
        MemberSpec::new("bob", BOB),
    ]
}

async fn setup_with(extra_toml: &str) -> Hostile {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &members());
    cfg.write_base(&format!("{LIMITS}{extra_toml}"));
    let server = start(&cfg).await;
    Hostile {
        up,
        _cfg: cfg,
        server,
    }
}

async fn setup() -> Hostile {
    setup_with("").await
}

/// A request from header lines (no CRLFs) and a body.
fn req(lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn auth_line(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// What came back on one connection.
struct Answer {
    bytes: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn closed_silently(&self) -> bool {
        self.bytes.is_empty()
    }

    fn reply(&self) -> RawReply {
        RawReply::parse(&self.text())
    }

    /// Statuses of every response on the connection, in order.
    fn statuses(&self) -> Vec<u16> {
        let text = self.text();
        text.match_indices("HTTP/1.1 ")
            .filter(|(i, _)| *i == 0 || text[..*i].ends_with('\n') || text[..*i].ends_with('}'))
            .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
            .collect()
    }
}

/// Send `bytes` on a fresh connection (optionally half-closing after), and
/// read until the server closes. Panics if it neither answers nor closes
/// within [`WAIT`]: a hang is a failure.
async fn send(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may refuse before reading everything; a write error is an
    // answer too (the connection closed).
    let _ = s.write_all(bytes).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(WAIT, read).await.is_err() {
        panic!(
            "no close within {WAIT:?}; got so far: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    Answer { bytes: out }
}

/// A normal member request on a fresh connection still gets 200.
async fn still_serving(h: &Hostile, after: &str) {
    let r = get(
        h.server.addr,
        "/still-serving",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200, "after {after}: the proxy stopped serving");
}

/// Send one case; its first response must have one of `statuses`, or
/// (when `closed_ok`) the server may close without answering.
async fn expect_status(
    h: &Hostile,
    name: &str,
    bytes: &[u8],
    statuses: &[u16],
    closed_ok: bool,
) -> Answer {
    expect_status_with(h, name, bytes, statuses, closed_ok, false).await
}

async fn expect_status_with(
    h: &Hostile,
    name: &str,
    bytes: &[u8],
    statuses: &[u16],
    closed_ok: bool,
    half_close: bool,
) -> Answer {
    let a = send(h.server.addr, bytes, half_close).await;
    if a.closed_silently() {
        assert!(closed_ok, "{name}: closed without an answer");
    } else {
        let r = a.reply();
        assert!(
            statuses.contains(&r.status),
            "{name}: status {} not in {statuses:?}: {}",
            r.status,
            a.text()
        );
        assert!(
            (400..500).contains(&r.status) || statuses.contains(&r.status),
            "{name}"
        );
    }
    still_serving(h, name).await;
    a
}

/// A clawgate refusal: JSON body with this reason and the request ID.
fn assert_refusal(name: &str, a: &Answer, status: u16, reason: &str) {
    let r = a.reply();
    assert_eq!(r.status, status, "{name}: {}", a.text());
    let b = r.json();
    assert_eq!(b["reason"], reason, "{name}");
    assert_eq!(
        b["request_id"].as_str(),
        r.header("x-request-id"),
        "{name}: the body names the request ID"
    );
    assert!(is_uuid_v7(r.header("x-request-id").unwrap()), "{name}");
}

// ---------------------------------------------------------------- heads

#[tokio::test]
async fn oversized_and_malformed_heads_get_4xx_and_the_proxy_keeps_serving() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let big = "a".repeat(70 * 1024);
    let long_uri = format!("GET /{big} HTTP/1.1");
    let long_header = format!("X-Big: {big}");
    let kib = "b".repeat(1024);
    let many_kib: Vec<String> = (0..70).map(|i| format!("X-K{i}: {kib}")).collect();
    let many_small: Vec<String> = (0..101).map(|i| format!("X-H{i}: v")).collect();

    let mut lines = vec!["GET / HTTP/1.1", "Host: gw", auth.as_str()];
    lines.extend(many_kib.iter().map(String::as_str));
    let too_big_total = req(&lines, b"");
    let mut lines = vec!["GET / HTTP/1.1", "Host: gw", auth.as_str()];
    lines.extend(many_small.iter().map(String::as_str));
    let too_many = req(&lines, b"");

    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "1 request line over max_header_bytes",
            req(&[&long_uri, "Host: gw", &auth], b""),
            &[414, 431],
        ),
        (
            "2 one header over max_header_bytes",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, &long_header], b""),
            &[431],
        ),
        ("3 headers adding up past the limit", too_big_total, &[431]),
        ("4 101 headers", too_many, &[431]),
        (
            "5 NUL in a header value",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, "X-A: a\0b"], b""),
            &[400],
        ),
        (
            "6 bare CR in a header value",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, "X-A: a\rb"], b""),
            &[400],
        ),
        (
            "7 space inside a header name",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, "X Bad: 1"], b""),
            &[400],
        ),
        (
            "8 whitespace before the colon",
            req(&["GET / HTTP/1.1", "Host : gw", &auth], b""),
            &[400],
        ),
        (
            "9 non-token method",
            req(&["G@T / HTTP/1.1", "Host: gw", &auth], b""),
            &[400],
        ),
        (
            "10 unknown HTTP version",
            req(&["GET / HTTP/9.9", "Host: gw", &auth], b""),
            &[400, 505],
        ),
        (
            "11 obs-fold continuation line",
            req(
                &["GET / HTTP/1.1", "Host: gw", &auth, "X-A: one", " two"],
                b"",
            ),
            &[400],
        ),
    ];
    for (name, bytes, statuses) in &cases {
        expect_status(&h, name, bytes, statuses, false).await;
    }
    let garbage: Vec<u8> = (0u8..=255).cycle().skip(3).take(4096).collect();
    expect_status(&h, "12 binary garbage", &garbage, &[400], true).await;
    assert_eq!(
        h.up.count(),
        cases.len() + 1,
        "only the still-serving probes"
    );
}

// ------------------------------------------------------------ smuggling

/// A request hidden in a body: no credential, a forged identity, its own path.
const SMUGGLED: &str =
    "GET /smuggled HTTP/1.1\r\nHost: gw\r\nX-Forwarded-User: root\r\nContent-Length: 0\r\n\r\n";

fn smuggled_nowhere(h: &Hostile, name: &str) {
    let seen = h.up.seen();
    assert!(
        !seen.iter().any(|s| s.contains("/smuggled")),
        "{name}: the upstream saw the smuggled request: {seen:?}"
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_and_nothing_is_smuggled() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    // Framed by Content-Length, the body would end after "0\r\n\r\n" and the
    // smuggled request would follow; framed as chunked, the same.
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let cl = format!("Content-Length: {}", 5);
    for (name, lines) in [
        (
            "13 CL then TE",
            vec![
                "POST /outer HTTP/1.1",
                "Host: gw",
                auth.as_str(),
                cl.as_str(),
                "Transfer-Encoding: chunked",
            ],
        ),
        (
            "14 TE then CL",
            vec![
                "POST /outer HTTP/1.1",
                "Host: gw",
                auth.as_str(),
                "Transfer-Encoding: chunked",
                cl.as_str(),
            ],
        ),
    ] {
        let before = h.up.count();
        let a = send(h.server.addr, &req(&lines, body.as_bytes()), false).await;
        // RFC 9112 §6.1: Transfer-Encoding wins and the connection closes
        // after the response, so the rest is never read as a request.
        assert_eq!(a.statuses(), vec![200], "{name}: {}", a.text());
        let seen = a.reply().json();
        assert_eq!(seen["path"], "/outer", "{name}");
        assert_eq!(seen["body_len"], 0, "{name}");
        assert!(
            seen["headers"].get("content-length").is_none(),
            "{name}: a stale Content-Length went upstream: {seen}"
        );
        assert_eq!(h.up.count(), before + 1, "{name}: one request upstream");
        smuggled_nowhere(&h, name);
        still_serving(&h, name).await;
    }
}

#[tokio::test]
async fn conflicting_framing_headers_get_400_before_anything_is_forwarded() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let post = |extra: &[&str]| {
        let mut lines = vec!["POST /outer HTTP/1.1", "Host: gw", auth.as_str()];
        lines.extend_from_slice(extra);
        req(&lines, body.as_bytes())
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "15 two different Content-Lengths",
            post(&["Content-Length: 5", "Content-Length: 40"]),
        ),
        (
            "16 Content-Length list 5, 6",
            post(&["Content-Length: 5, 6"]),
        ),
        ("17 Content-Length +5", post(&["Content-Length: +5"])),
        ("17 Content-Length -1", post(&["Content-Length: -1"])),
        ("17 Content-Length 0x5", post(&["Content-Length: 0x5"])),
        (
            "18 Transfer-Encoding: chunked, identity",
            post(&["Transfer-Encoding: chunked, identity"]),
        ),
        (
            "19 Transfer-Encoding: identity",
            post(&["Transfer-Encoding: identity"]),
        ),
        (
            "19 Transfer-Encoding: xchunked",
            post(&["Transfer-Encoding: xchunked"]),
        ),
        (
            "19 chunked then identity in two headers",
            post(&["Transfer-Encoding: chunked", "Transfer-Encoding: identity"]),
        ),
        (
            "20 Transfer-Encoding over an obs-fold",
            post(&["Transfer-Encoding:", " chunked"]),
        ),
        (
            "21 Transfer-Encoding on HTTP/1.0",
            req(
                &[
                    "POST /outer HTTP/1.0",
                    "Host: gw",
                    &auth,
                    "Transfer-Encoding: chunked",
                ],
                body.as_bytes(),
            ),
        ),
    ];
    for (name, bytes) in &cases {
        let a = expect_status(&h, name, bytes, &[400], false).await;
        assert_eq!(a.statuses(), vec![400], "{name}: one answer, then closed");
        smuggled_nowhere(&h, name);
    }
    assert!(
        !h.up.seen().iter().any(|s| s.contains("/outer")),
        "a refused request reached the upstream: {:?}",
        h.up.seen()
    );
}

#[tokio::test]
async fn two_identical_content_lengths_reach_the_upstream_as_one() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let a = send(
        h.server.addr,
        &req(
            &[
                "POST /outer HTTP/1.1",
                "Host: gw",
                &auth,
                "Content-Length: 5",
                "Content-Length: 5",
                "Connection: close",
            ],
            b"hello",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "22: {}", a.text());
    let seen = r.json();
    assert_eq!(seen["body_len"], 5);
    assert_eq!(seen["headers"]["content-length"], serde_json::json!(["5"]));
    still_serving(&h, "22").await;
}

#[tokio::test]
async fn bytes_past_content_length_are_a_second_request_judged_on_its_own() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    // Content-Length: 5 covers "hello"; what follows is parsed as the next
    // request on the connection, and it carries no credential.
    let mut body = b"hello".to_vec();
    body.extend_from_slice(
        SMUGGLED
            .replace("Content-Length: 0", "Connection: close")
            .as_bytes(),
    );
    let a = send(
        h.server.addr,
        &req(
            &[
                "POST /outer HTTP/1.1",
                "Host: gw",
                &auth,
                "Content-Length: 5",
            ],
            &body,
        ),
        false,
    )
    .await;
    assert_eq!(a.statuses(), vec![200, 401], "23: {}", a.text());
    assert_eq!(h.up.seen(), vec!["POST /outer".to_string()]);
    still_serving(&h, "23").await;
}

// ------------------------------------------------------ chunked bodies

#[tokio::test]
async fn chunked_encoding_errors_get_400_and_are_not_blamed_on_the_upstream() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let chunked = |body: &str| {
        req(
            &[
                "POST /upload HTTP/1.1",
                "Host: gw",
                &auth,
                "Transfer-Encoding: chunked",
            ],
            body.as_bytes(),
        )
    };
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20 * 1024));
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "24 invalid chunk size",
            chunked("zz\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "25 chunk size overflowing u64",
            chunked("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "26 chunk data without its CRLF",
            chunked("5\r\nhelloXX0\r\n\r\n"),
            false,
        ),
        (
            "27 chunk extension over the limit",
            chunked(&long_ext),
            false,
        ),
        ("28 chunked body cut short", chunked("a\r\nhel"), true),
    ];
    for (name, bytes, half_close) in &cases {
        let a = expect_status_with(&h, name, bytes, &[400], *half_close, *half_close).await;
        if !a.closed_silently() {
            assert_refusal(name, &a, 400, "bad_request_body");
        }
    }
    let cut = req(
        &[
            "POST /upload HTTP/1.1",
            "Host: gw",
            &auth,
            "Content-Length: 100",
        ],
        b"only a few bytes",
    );
    let a = expect_status_with(&h, "29 CL body cut short", &cut, &[400], true, true).await;
    if !a.closed_silently() {
        assert_refusal("29", &a, 400, "bad_request_body");
    }
    let m = metrics(h.server.admin_addr).await;
    assert!(
        series(&m, "clawgate_upstream_errors_total")
            .values()
            .all(|v| *v == 0.0),
        "a client's broken body is not an upstream fault: {m}"
    );
}

#[tokio::test]
async fn one_chunk_declared_larger_than_the_body_limit_gets_413() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    // 0x40000000 = 1 GiB declared; 2 KiB sent (the limit is 1 KiB).
    let body = format!("40000000\r\n{}", "x".repeat(2048));
    let bytes = req(
        &[
            "POST /upload HTTP/1.1",
            "Host: gw",
            &auth,
            "Transfer-Encoding: chunked",
        ],
        body.as_bytes(),
    );
    let a = expect_status_with(&h, "30 huge chunk", &bytes, &[413], false, true).await;
    assert_refusal("30", &a, 413, "body_too_large");
}

// ------------------------------------------------------ request targets

#[tokio::test]
async fn authority_and_asterisk_form_targets_get_400() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    for (name, line) in [
        ("35 authority-form GET", "GET gw.example.com:80 HTTP/1.1"),
        ("36 asterisk-form OPTIONS", "OPTIONS * HTTP/1.1"),
    ] {
        let a = expect_status(
            &h,
            name,
            &req(&[line, "Host: gw", &auth, "Connection: close"], b""),
            &[400],
            false,
        )
        .await;
        assert_refusal(name, &a, 400, "bad_target");
    }
    assert_eq!(h.up.count(), 2, "only the still-serving probes");
}

// ----------------------------------------------------------------- Host

#[tokio::test]
async fn h2_authority_and_host_that_disagree_get_400() {
    let h = setup().await;
    let tcp = TcpStream::connect(h.server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c prior knowledge is spoken");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://gw.example.com/")
        .header("host", "evil.example.net")
        .header("authorization", format!("Bearer {ALICE}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(b["reason"], "host_authority_mismatch");
    assert_eq!(h.up.count(), 0);
    still_serving(&h, "39").await;
}

#[tokio::test]
async fn host_that_is_not_an_authority_gets_400() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    for host in [
        "Host: user@gw.example.com",
        "Host: gw.example.com/path",
        "Host: gw example.com",
        "Host: gw.example.com:port",
        "Host: gw.example.com\x7f",
    ] {
        let name = format!("40 {host:?}");
        let a = expect_status(
            &h,
            &name,
            &req(&["GET / HTTP/1.1", host, &auth, "Connection: close"], b""),
            &[400],
            false,
        )
        .await;
        // A Host byte the HTTP parser refuses (DEL) is a malformed head;
        // the others reach the request path.
        let reason = if host.contains('\x7f') {
            "malformed_request"
        } else {
            "bad_host"
        };
        assert_refusal(&name, &a, 400, reason);
    }
    assert_eq!(h.up.count(), 5, "only the still-serving probes");
}

// --------------------------------------------------------------- Origin

/// One request as alice with this raw `Origin` value.
async fn with_origin(h: &Hostile, origin: &[u8]) -> Answer {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(
        format!(
            "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\nConnection: close\r\nOrigin: ",
            auth_line(ALICE)
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(origin);
    bytes.extend_from_slice(b"\r\n\r\n");
    send(h.server.addr, &bytes, false).await
}

#[tokio::test]
async fn hostile_origins_get_the_403_diff_or_pass_when_they_normalise() {
    let h = setup().await;
    let long = format!("https://{}.example.com", "a".repeat(10_000));
    // (case, Origin bytes, expected hint fragment; None = allowed)
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("42 null", b"null".to_vec(), Some("never be allowed")),
        (
            "43 userinfo",
            b"https://alice@alice.example.com".to_vec(),
            Some("userinfo"),
        ),
        (
            "44 raw IDN",
            "https://bücher.example".as_bytes().to_vec(),
            Some("punycode"),
        ),
        (
            "45 punycode, allowed",
            b"https://xn--bcher-kva.example".to_vec(),
            None,
        ),
        (
            "46 punycode, not allowed",
            b"https://xn--bcher-kva.example.net".to_vec(),
            Some("differs"),
        ),
        ("47 upper case", b"HTTPS://ALICE.EXAMPLE.COM".to_vec(), None),
        (
            "47 upper case, non-default port",
            b"HTTP://127.0.0.1:3000".to_vec(),
            None,
        ),
        (
            "48 default port spelled out",
            b"https://alice.example.com:443".to_vec(),
            None,
        ),
        (
            "49 non-default port",
            b"https://alice.example.com:8443".to_vec(),
            Some("port differs: presented 8443, allowed 443 (default)"),
        ),
        (
            "50 trailing dot",
            b"https://alice.example.com.".to_vec(),
            Some("differs"),
        ),
        ("51 10 000 bytes", long.into_bytes(), Some("longer than")),
        (
            "52 with a path",
            b"https://alice.example.com/app".to_vec(),
            Some("trailing path"),
        ),
        (
            "53 non-UTF-8 bytes",
            b"https://alice.\xff\xfe.example.com".to_vec(),
            Some("not valid UTF-8"),
        ),
        (
            "54 port 0",
            b"https://alice.example.com:0".to_vec(),
            Some("port differs"),
        ),
        (
            "54 port 65536",
            b"https://alice.example.com:65536".to_vec(),
            Some("out of range"),
        ),
        (
            "54 port letters",
            b"https://alice.example.com:https".to_vec(),
            Some("invalid port"),
        ),
        (
            "55 no scheme",
            b"alice.example.com".to_vec(),
            Some("expected scheme://host"),
        ),
        ("55 star", b"*".to_vec(), Some("expected scheme://host")),
        (
            "56 ws:// for http://",
            b"ws://127.0.0.1:3000".to_vec(),
            Some("scheme differs"),
        ),
    ];
    let mut allowed = 0;
    for (name, origin, hint) in &cases {
        let a = with_origin(&h, origin).await;
        let r = a.reply();
        match hint {
            None => {
                assert_eq!(r.status, 200, "{name}: {}", a.text());
                allowed += 1;
            }
            Some(hint) => {
                assert_refusal(name, &a, 403, "origin_not_allowed");
                let b = r.json();
                assert_eq!(b["member"], "alice", "{name}");
                let o = &b["origin"];
                assert!(
                    o["hint"].as_str().unwrap().contains(hint),
                    "{name}: hint {} lacks {hint:?}",
                    o["hint"]
                );
                assert!(o["allowed"].as_array().unwrap().len() == 4, "{name}");
                let shown = o["presented"].as_str().unwrap();
                assert!(shown.len() <= 260 * 4, "{name}: presented is bounded");
                assert!(!shown.chars().any(char::is_control), "{name}");
            }
        }
        still_serving(&h, name).await;
    }
    assert_eq!(h.up.count(), allowed + cases.len());
}

// ------------------------------------------------------ X-Forwarded-For

#[tokio::test]
async fn malformed_forwarded_for_from_a_trusted_peer_gets_400() {
    let h = setup_with(TRUSTED_LOOPBACK).await;
    let hops = vec!["198.51.100.7"; 65].join(", ");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("58 65 hops", hops.into_bytes()),
        ("59 obs-text", b"198.51.100.\xe9".to_vec()),
        ("59 IPv6 zone ID", b"fe80::1%eth0".to_vec()),
        ("59 port out of range", b"198.51.100.7:99999".to_vec()),
        ("59 CIDR instead of an address", b"198.51.100.0/24".to_vec()),
    ];
    for (name, xff) in &cases {
        let mut bytes = format!(
            "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\nConnection: close\r\nX-Forwarded-For: ",
            auth_line(ALICE)
        )
        .into_bytes();
        bytes.extend_from_slice(xff);
        bytes.extend_from_slice(b"\r\n\r\n");
        let a = expect_status(&h, name, &bytes, &[400], false).await;
        assert_refusal(name, &a, 400, "bad_x_forwarded_for");
    }
    assert_eq!(h.up.count(), cases.len(), "only the still-serving probes");
}

#[tokio::test]
async fn forwarded_for_of_only_separators_from_a_trusted_peer_means_the_peer() {
    let h = setup_with(TRUSTED_LOOPBACK).await;
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "X-Forwarded-For: , ,,",
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "60: {}", a.text());
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
}

#[tokio::test]
async fn forwarded_for_garbage_from_an_untrusted_peer_is_ignored_and_overwritten() {
    let h = setup().await;
    let mut bytes = format!(
        "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\nConnection: close\r\n",
        auth_line(ALICE)
    )
    .into_bytes();
    bytes.extend_from_slice(b"X-Forwarded-For: not-an-ip, \xe9\xe9, 999.1.1.1\r\n");
    bytes.extend_from_slice(b"X-Forwarded-For: 10.0.0.1\r\n\r\n");
    let a = send(h.server.addr, &bytes, false).await;
    let r = a.reply();
    assert_eq!(r.status, 200, "61: {}", a.text());
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
    still_serving(&h, "61").await;
}

// ------------------------------------------------------ forged identity

#[tokio::test]
async fn forged_identity_headers_without_a_credential_get_401() {
    let h = setup().await;
    let a = expect_status(
        &h,
        "63 forged identity, no credential",
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                "X-Forwarded-User: alice",
                "X-Openclaw-Scopes: operator.admin",
                "X-Clawgate-Member: alice",
                "Forwarded: for=198.51.100.7;user=alice",
                "Connection: close",
            ],
            b"",
        ),
        &[401],
        false,
    )
    .await;
    assert_refusal("63", &a, 401, "no_credentials");
    assert_eq!(h.up.count(), 1, "only the still-serving probe");
}

#[tokio::test]
async fn forged_identity_in_duplicates_and_odd_case_never_beats_the_token() {
    let h = setup().await;
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                "x-FORWARDED-user: alice",
                &auth_line(BOB),
                "X-Forwarded-User: root",
                "X-OpenClaw-Scopes: operator.admin",
                "x-openclaw-scopes: operator.write",
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "64: {}", a.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert_eq!(
        headers["x-openclaw-scopes"],
        serde_json::json!(["operator.read"])
    );
}

#[tokio::test]
async fn bearer_of_one_member_and_header_token_of_another_pick_the_bearer_and_strip_both() {
    let h = setup().await;
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                &auth_line(BOB),
                &format!("X-Clawgate-Token: {ALICE}"),
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "65: {}", a.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert!(headers.get("authorization").is_none(), "{headers}");
    assert!(headers.get("x-clawgate-token").is_none(), "{headers}");
    let text = r.body;
    assert!(!text.contains(ALICE) && !text.contains(BOB), "token leaked");
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn hostile_tokens_get_401_and_reveal_nothing() {
    let h = setup().await;
    let mut upper = ALICE.to_ascii_uppercase();
    upper.push('x');
    let plus = format!("{ALICE}x");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "66 inner space",
            format!("Authorization: Bearer {} {}", &ALICE[..10], &ALICE[10..]).into_bytes(),
            "bad_token",
        ),
        (
            "67 tab after the scheme",
            format!("Authorization: Bearer\t{ALICE}").into_bytes(),
            "no_credentials",
        ),
        (
            "68 unicode",
            "Authorization: Bearer alice-hostile-tökén"
                .as_bytes()
                .to_vec(),
            "bad_token",
        ),
        (
            "69 empty bearer",
            b"Authorization: Bearer ".to_vec(),
            "no_credentials",
        ),
        (
            "70 513 bytes",
            format!("Authorization: Bearer {}", "t".repeat(513)).into_bytes(),
            "bad_token",
        ),
        (
            "70 32 KiB",
            format!("Authorization: Bearer {}", "t".repeat(32 * 1024)).into_bytes(),
            "bad_token",
        ),
        (
            "71 prefix",
            format!("Authorization: Bearer {}", &ALICE[..ALICE.len() - 1]).into_bytes(),
            "bad_token",
        ),
        (
            "71 one byte more",
            format!("Authorization: Bearer {plus}").into_bytes(),
            "bad_token",
        ),
        (
            "71 case changed",
            format!("Authorization: Bearer {}", ALICE.to_ascii_uppercase()).into_bytes(),
            "bad_token",
        ),
        (
            "72 X-Clawgate-Token with an inner space",
            format!("X-Clawgate-Token: {} {}", &ALICE[..10], &ALICE[10..]).into_bytes(),
            "bad_token",
        ),
        (
            "72 X-Clawgate-Token unicode",
            "X-Clawgate-Token: ✓".as_bytes().to_vec(),
            "bad_token",
        ),
        (
            "other scheme",
            format!("Authorization: Basic {ALICE}").into_bytes(),
            "no_credentials",
        ),
    ];
    for (name, header, reason) in &cases {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(b"\r\n\r\n");
        let a = expect_status(&h, name, &bytes, &[401], false).await;
        assert_refusal(name, &a, 401, reason);
        let text = a.text();
        for secret in ["alice", "bob", "tökén", &upper[..12]] {
            assert!(!text.contains(secret), "{name}: 401 mentions {secret}");
        }
        assert!(a.reply().header("www-authenticate").is_some(), "{name}");
    }
    let nul = req(
        &[
            "GET / HTTP/1.1",
            "Host: gw",
            &format!("Authorization: Bearer {}\0{}", &ALICE[..5], &ALICE[5..]),
        ],
        b"",
    );
    expect_status(&h, "73 NUL in a token", &nul, &[400], false).await;
    let padded = req(
        &[
            "GET / HTTP/1.1",
            "Host: gw",
            &format!("Authorization: Bearer    {ALICE}   "),
            "Connection: close",
        ],
        b"",
    );
    let a = send(h.server.addr, &padded, false).await;
    assert_eq!(a.reply().status, 200, "74: {}", a.text());
    let m = metrics(h.server.admin_addr).await;
    assert!(
        !m.contains(ALICE) && !m.contains("tökén"),
        "tokens in metrics"
    );
}

// ------------------------------------------------------------ WebSocket

/// Send an upgrade request and read until the response head is complete
/// (the connection may stay open as a tunnel). Panics on a hang.
async fn upgrade_head(addr: SocketAddr, bytes: &[u8]) -> (RawReply, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("an upgrade is answered within 10s");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(!text.is_empty(), "closed without an answer");
    (RawReply::parse(&text), s)
}

const WS_KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

#[tokio::test]
async fn invalid_websocket_upgrades_are_answered_and_never_hang() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let upgrade = ["Connection: Upgrade", "Upgrade: websocket"];

    let (r, _) = upgrade_head(
        h.server.addr,
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                &auth,
                upgrade[0],
                upgrade[1],
                "Sec-WebSocket-Version: 13",
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 400, "76: the upstream's own refusal");
    assert!(is_uuid_v7(r.header("x-request-id").unwrap()));
    still_serving(&h, "76").await;

    // The test gateway does not check the version; whatever it answers,
    // the exchange ends and the proxy keeps serving.
    let (r, s) = upgrade_head(
        h.server.addr,
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                &auth,
                upgrade[0],
                upgrade[1],
                WS_KEY,
                "Sec-WebSocket-Version: 8",
            ],
            b"",
        ),
    )
    .await;
    assert!(
        r.status == 101 || (400..500).contains(&r.status),
        "77: {}",
        r.status
    );
    drop(s);
    still_serving(&h, "77").await;

    let (r, s) = upgrade_head(
        h.server.addr,
        &req(
            &[
                "POST /ws HTTP/1.1",
                "Host: gw",
                &auth,
                upgrade[0],
                upgrade[1],
                WS_KEY,
                "Sec-WebSocket-Version: 13",
                "Content-Length: 5",
            ],
            b"hello",
        ),
    )
    .await;
    assert!(
        r.status == 101 || (400..500).contains(&r.status),
        "78: {}",
        r.status
    );
    drop(s);
    still_serving(&h, "78").await;
    wait_for_no_websockets(&h).await;
}

async fn wait_for_no_websockets(h: &Hostile) {
    for _ in 0..100 {
        let m = metrics(h.server.admin_addr).await;
        if series(&m, "clawgate_websockets_open")
            .values()
            .all(|v| *v == 0.0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tunnels left open after their clients went away");
}

#[tokio::test]
async fn a_101_to_a_request_that_did_not_ask_for_an_upgrade_gets_502() {
    let h = setup().await;
    // Upgrade without `Connection: upgrade` is not an upgrade request: the
    // header is dropped, and the gateway's 101 is refused.
    let a = expect_status(
        &h,
        "79",
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "Upgrade: websocket",
                WS_KEY,
                "Connection: close",
            ],
            b"",
        ),
        &[502],
        false,
    )
    .await;
    assert_refusal("79", &a, 502, "upstream_reset");
    let m = metrics(h.server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            r#"clawgate_upstream_errors_total{kind="unrequested_upgrade",upstream="prod"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn h2c_upgrade_is_ignored_and_the_upstream_never_sees_it() {
    let h = setup().await;
    // RFC 9110 §7.8 lets a server ignore Upgrade; tunnelling h2c would let
    // the client speak HTTP/2 to the gateway past clawgate's checks.
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET /plain HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "Connection: Upgrade, HTTP2-Settings, close",
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "80: {}", a.text());
    let headers = &r.json()["headers"];
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(
            headers.get(gone).is_none(),
            "80: {gone} went upstream: {headers}"
        );
    }
    still_serving(&h, "80").await;
}

#[tokio::test]
async fn websocket_upgrade_without_credentials_gets_401() {
    let h = setup().await;
    let (r, _) = upgrade_head(
        h.server.addr,
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                "Connection: Upgrade",
                "Upgrade: websocket",
                WS_KEY,
                "Sec-WebSocket-Version: 13",
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 401, "81");
    assert_eq!(h.up.count(), 0);
    still_serving(&h, "81").await;
}

// ------------------------------------------------------------------ TLS

async fn tls_setup(client_auth: &str) -> (Pki, Hostile) {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &members(),
        &pki.listen_mtls(client_auth),
    );
    cfg.write_base(LIMITS);
    let server = start(&cfg).await;
    (
        pki,
        Hostile {
            up,
            _cfg: cfg,
            server,
        },
    )
}

/// How the server refused a TLS client: the handshake error, an alert on
/// the first read, or a close without any HTTP response.
async fn tls_refusal(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> String {
    let mut stream = match tls_connect(addr, cfg).await {
        Err(e) => return e.to_string(),
        Ok(s) => s,
    };
    let req = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {ALICE}\r\nconnection: close\r\n\r\n"
    );
    let exchange = async {
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.map(|_| buf)
    };
    match tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the server answers or closes within 10s")
    {
        Err(e) => e.to_string(),
        Ok(buf) => {
            assert!(
                buf.is_empty(),
                "a refused handshake was answered: {}",
                String::from_utf8_lossy(&buf)
            );
            "closed without a response".into()
        }
    }
}

/// A member request over TLS (alice's token; `cert` when required).
async fn tls_still_serving(pki: &Pki, h: &Hostile, cert: Option<&ClientCert>, after: &str) {
    let r = https_get(
        h.server.addr,
        pki.client_config(cert, &["http/1.1"]),
        Version::HTTP_11,
        "/still-serving",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200, "after {after}: the proxy stopped serving");
}

#[tokio::test]
async fn bad_client_certificates_are_refused_at_the_handshake() {
    for client_auth in ["optional", "required"] {
        let (pki, h) = tls_setup(client_auth).await;
        let good = pki.client("alice", vec![dns_san("alice.members.test")]);
        let expired = pki.client_with("alice", vec![], |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        });
        let future = pki.client_with("alice", vec![], |p| {
            p.not_before = rcgen::date_time_ymd(2090, 1, 1);
            p.not_after = rcgen::date_time_ymd(2091, 1, 1);
        });
        let server_only = pki.client_with("alice", vec![], |p| {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        });
        let stranger = Pki::unrelated_client("alice");
        let cases: [(&str, &ClientCert, &[&str]); 4] = [
            ("84 unknown CA", &stranger, &["unknownca", "badcertificate"]),
            ("85 expired", &expired, &["expired", "badcertificate"]),
            (
                "86 not yet valid",
                &future,
                &["notvalidyet", "expired", "badcertificate"],
            ),
            (
                "87 serverAuth only",
                &server_only,
                &["unsupportedcertificate", "badcertificate", "purpose"],
            ),
        ];
        for (name, cert, alerts) in cases {
            let name = format!("{name} ({client_auth})");
            let why = tls_refusal(h.server.addr, pki.client_config(Some(cert), &["http/1.1"]))
                .await
                .to_ascii_lowercase();
            assert!(
                alerts.iter().any(|a| why.contains(a)),
                "{name}: expected one of {alerts:?}, got: {why}"
            );
            tls_still_serving(&pki, &h, Some(&good), &name).await;
        }
        assert_eq!(h.up.count(), 4, "only the still-serving probes");
    }
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_are_closed() {
    let (pki, h) = tls_setup("optional").await;
    let a = send(
        h.server.addr,
        format!("GET / HTTP/1.1\r\nHost: gw\r\n{}\r\n\r\n", auth_line(ALICE)).as_bytes(),
        false,
    )
    .await;
    assert!(
        !a.text().contains("200 OK") && !a.text().contains("x-upstream"),
        "88: plain HTTP was served on the TLS port: {}",
        a.text()
    );
    tls_still_serving(&pki, &h, None, "88").await;
    let garbage: Vec<u8> = [0x16u8, 0x03, 0x01, 0xff, 0xff]
        .into_iter()
        .chain((0u8..=255).cycle().take(2048))
        .collect();
    let a = send(h.server.addr, &garbage, false).await;
    assert!(!a.text().contains("HTTP/1.1"), "89: {}", a.text());
    tls_still_serving(&pki, &h, None, "89").await;
    assert_eq!(h.up.count(), 2);
}
