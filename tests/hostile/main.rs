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
//! | 91 | dot segment, backslash, encoded slash or control in the path (25 spellings, h1 and h2, public/member/session paths) | 400 bad_path, upstream untouched | here |
//! | 92 | dotted but plain paths; escaped unreserved characters      | 200 (decoded upstream)      | here  |
//!
//! 92 cases: 79 here (this folder, one file per section of the table),
//! 13 in the files named.

mod chunked;
#[path = "../common/mod.rs"]
mod common;
mod forwarded;
mod heads;
mod identity;
mod origin;
mod smuggling;
mod targets;
mod tls;
mod websocket;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::tls::{dns_san, https_get, tls_refusal, ClientCert, Pki};
use common::*;
use http::Version;
use http_body_util::{BodyExt, Empty};
use tokio::io::AsyncWriteExt;
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
    server: clawgate::runtime::server::Server,
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
    if tokio::time::timeout(WAIT, read_until_close(&mut s, &mut out))
        .await
        .is_err()
    {
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
