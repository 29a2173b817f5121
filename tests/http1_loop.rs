//! The lean HTTP/1.1 loop (`src/downstream`) on raw sockets: plain requests and
//! requests it hands to hyper (a body) on one keep-alive connection,
//! pipelining, HEAD, `Connection: close`, the answers to heads that are
//! not HTTP or are too large, which now carry a request ID, and HTTP/1.0
//! clients, answered `HTTP/1.1` (RFC 9110 §6.2) with 1.0's framing.
//!
//! Every read is bounded by WAIT.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "alice-h1-loop-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

async fn setup() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    (up, cfg, server)
}

fn get_line(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {ALICE}\r\n{extra}\r\n")
}

/// Reads one response off a keep-alive connection: the head, then the
/// body by `Content-Length` or chunked (unless `bodyless`).
struct Reader {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    fn new(s: TcpStream) -> Reader {
        Reader { s, buf: Vec::new() }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(WAIT, self.s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("no response within {WAIT:?}"),
        }
    }

    async fn response(&mut self, bodyless: bool) -> RawReply {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill().await,
                "connection closed before a response head"
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        let mut reply = RawReply::parse(&head);
        self.buf.drain(..head_end);
        let body = if bodyless {
            Vec::new()
        } else if let Some(n) = reply.header("content-length") {
            let n: usize = n.parse().unwrap();
            while self.buf.len() < n {
                assert!(self.fill().await, "body cut short");
            }
            self.buf.drain(..n).collect()
        } else {
            assert_eq!(reply.header("transfer-encoding"), Some("chunked"), "{head}");
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await, "chunk cut short");
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).unwrap(), 16)
                        .unwrap();
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill().await, "chunk cut short");
                }
                body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        };
        reply.body = String::from_utf8(body).unwrap();
        reply
    }

    async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }
}

async fn connect(server: &clawgate::runtime::server::Server) -> Reader {
    Reader::new(TcpStream::connect(server.addr).await.unwrap())
}

#[tokio::test]
async fn plain_and_handed_over_requests_share_one_keep_alive_connection() {
    let (up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    let mut ids = Vec::new();
    // Plain GET (the lean loop), a POST with a body (handed to hyper with
    // the bytes already read), then another GET (hyper from then on).
    c.s.write_all(get_line("/first", "").as_bytes())
        .await
        .unwrap();
    let r = c.response(false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/first");
    ids.push(r.header("x-request-id").unwrap().to_string());

    let post = format!(
        "POST /second HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: 5\r\n\r\nhello"
    );
    c.s.write_all(post.as_bytes()).await.unwrap();
    let r = c.response(false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.json()["body_len"], 5, "the body hyper read is whole");
    ids.push(r.header("x-request-id").unwrap().to_string());

    c.s.write_all(get_line("/third", "").as_bytes())
        .await
        .unwrap();
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/third");
    ids.push(r.header("x-request-id").unwrap().to_string());

    assert_eq!(up.count(), 3);
    assert!(ids.iter().all(|i| is_uuid_v7(i)), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one request ID each");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    let all: String = (0..3).map(|i| get_line(&format!("/p{i}"), "")).collect();
    c.s.write_all(all.as_bytes()).await.unwrap();
    for i in 0..3 {
        let r = c.response(false).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["path"], format!("/p{i}"));
    }
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn head_gets_the_length_and_no_body() {
    let (_up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    let head = get_line("/h", "").replacen("GET", "HEAD", 1);
    c.s.write_all(head.as_bytes()).await.unwrap();
    let r = c.response(true).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some());
    // Had a body followed, it would be read here as the next response.
    c.s.write_all(get_line("/after-head", "").as_bytes())
        .await
        .unwrap();
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/after-head");
}

#[tokio::test]
async fn connection_close_is_answered_then_closed() {
    let (_up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    c.s.write_all(get_line("/bye", "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed().await, "the server closes after the response");
}

#[tokio::test]
async fn a_refusal_keeps_the_connection_and_has_a_date() {
    let (up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    let wrong = "GET /x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer nope\r\n\r\n";
    c.s.write_all(wrong.as_bytes()).await.unwrap();
    let r = c.response(false).await;
    assert_eq!(r.status, 401);
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(r.json()["request_id"].as_str(), r.header("x-request-id"));
    c.s.write_all(get_line("/y", "").as_bytes()).await.unwrap();
    assert_eq!(c.response(false).await.status, 200);
    assert_eq!(up.count(), 1);
}

/// A refusal's fixed fields are prewritten lines (no `HeaderMap`): the
/// lean loop writes them as they are, hyper (after a request with a body
/// hands the connection over) gets them as a map. Same head either way.
#[tokio::test]
async fn a_refusals_fields_are_the_same_from_either_path() {
    let (up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    let lean = "GET /x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer nope\r\n\r\n";
    let hyper = "POST /x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer nope\r\nContent-Length: 2\r\n\r\nhi";
    let mut heads = Vec::new();
    for req in [lean, hyper] {
        c.s.write_all(req.as_bytes()).await.unwrap();
        let r = c.response(false).await;
        assert_eq!(r.status, 401, "{}", r.body);
        let once = |name: &str| {
            let v: Vec<_> = r.headers.iter().filter(|(k, _)| k == name).collect();
            assert_eq!(v.len(), 1, "{name} once in {:?}", r.headers);
            v[0].1.clone()
        };
        assert_eq!(once("content-type"), "application/json");
        assert_eq!(once("cache-control"), "no-store");
        assert_eq!(
            once("www-authenticate"),
            "Bearer realm=\"clawgate\", error=\"invalid_token\""
        );
        assert_eq!(once("content-length"), r.body.len().to_string());
        let rid = once("x-request-id");
        assert_eq!(r.json()["request_id"].as_str(), Some(rid.as_str()));
        assert!(is_uuid_v7(&rid), "{rid}");
        heads.push(["content-type", "cache-control", "www-authenticate"].map(once));
    }
    assert_eq!(heads[0], heads[1]);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn heads_that_are_not_http_or_too_large_get_a_request_id() {
    let (up, _cfg, server) = setup().await;
    for (name, bytes, status, reason) in [
        (
            "not HTTP",
            b"HELLO THERE\x01\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "head over max_header_bytes",
            get_line("/big", &format!("X-Big: {}\r\n", "a".repeat(70 * 1024))).into_bytes(),
            431,
            "request_head_too_large",
        ),
        (
            "over 100 header fields",
            get_line(
                "/many",
                &(0..101)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
            )
            .into_bytes(),
            431,
            "request_head_too_large",
        ),
    ] {
        let mut c = connect(&server).await;
        let _ = c.s.write_all(&bytes).await;
        let r = c.response(false).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        let rid = r.header("x-request-id").expect("a request ID");
        assert!(is_uuid_v7(rid), "{name}");
        assert_eq!(r.json()["reason"], reason, "{name}");
        assert_eq!(r.json()["request_id"], rid, "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}");
    }
    assert_eq!(up.count(), 0);
    let r = get(
        server.addr,
        "/still",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_client_gets_one_request_id_ours_even_when_the_gateway_names_its_own() {
    let (up, _cfg, server) = setup().await;
    let mut c = connect(&server).await;
    // The lean loop writes the gateway's fields as lines; hyper (after the
    // POST hands the connection over) builds a map from them: both paths.
    c.s.write_all(get_line("/own-request-id", "").as_bytes())
        .await
        .unwrap();
    let lean = c.response(false).await;
    let post = format!(
        "POST /own-request-id HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: 2\r\n\r\nhi"
    );
    c.s.write_all(post.as_bytes()).await.unwrap();
    let hyper = c.response(false).await;
    for r in [lean, hyper] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, "own id");
        let ids: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "x-request-id")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "{:?}", r.headers);
        assert!(is_uuid_v7(ids[0]), "{ids:?}");
    }
    assert_eq!(up.count(), 2);
}

/// Send `request` on a new connection; what came back before it closed.
async fn http10(server: &clawgate::runtime::server::Server, request: &str) -> String {
    let text = raw(server.addr, request.as_bytes(), WAIT).await;
    assert!(!text.is_empty(), "no answer to {request:?}");
    text
}

#[tokio::test]
async fn http_1_0_clients_are_answered_http_1_1_and_the_connection_closes() {
    let (up, _cfg, server) = setup().await;
    let auth = format!("Authorization: Bearer {ALICE}\r\n");
    let cases = [
        // Forwarded, by the lean loop.
        (
            format!("GET /ten HTTP/1.0\r\nHost: gw.test\r\n{auth}\r\n"),
            200,
        ),
        // Without Host: HTTP/1.0 may leave it out.
        (format!("GET /ten HTTP/1.0\r\n{auth}\r\n"), 200),
        // Forwarded with a body, by hyper.
        (
            format!("POST /ten HTTP/1.0\r\nHost: gw.test\r\n{auth}Content-Length: 5\r\n\r\nhello"),
            200,
        ),
        // Refused here.
        (
            "GET /ten HTTP/1.0\r\nHost: gw.test\r\n\r\n".to_string(),
            401,
        ),
        (
            format!("GET http://gw.test/ten HTTP/1.0\r\n{auth}\r\n"),
            400,
        ),
        (
            "POST /ten HTTP/1.0\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello".to_string(),
            401,
        ),
    ];
    for (request, status) in &cases {
        // `raw` reads until the proxy closes: 1.0 without keep-alive.
        let text = http10(&server, request).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} got {text:?}"
        );
        let reply = RawReply::parse(&text);
        assert_eq!(reply.header("connection"), Some("close"), "{request:?}");
        assert_eq!(reply.header("transfer-encoding"), None, "{request:?}");
        let length: usize = reply.header("content-length").unwrap().parse().unwrap();
        assert_eq!(reply.body.len(), length, "{request:?}");
    }
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn an_http_1_0_client_gets_a_stream_delimited_by_close_and_may_keep_alive() {
    let (up, _cfg, server) = setup().await;
    // A body of unknown length: no chunked coding for 1.0, the end is the close.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let req =
        format!("GET /sse HTTP/1.0\r\nHost: gw.test\r\nAuthorization: Bearer {ALICE}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let first = async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("data: first") {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, first)
        .await
        .expect("the first event");
    up.release_sse();
    tokio::time::timeout(WAIT, read_until_close(&mut s, &mut got))
        .await
        .expect("closed at the end of the stream");
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let reply = RawReply::parse(&text);
    assert_eq!(reply.header("transfer-encoding"), None, "{text}");
    assert_eq!(reply.header("connection"), Some("close"), "{text}");
    assert_eq!(reply.body, "data: first\n\ndata: last\n\n");

    // Asked to, a known length keeps the connection.
    let mut c = connect(&server).await;
    let ka = format!(
        "GET /ka HTTP/1.0\r\nHost: gw.test\r\nAuthorization: Bearer {ALICE}\r\nConnection: keep-alive\r\n\r\n"
    );
    for _ in 0..2 {
        c.s.write_all(ka.as_bytes()).await.unwrap();
        let r = c.response(false).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    c.s.write_all(b"HEAD /ka HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        .await
        .unwrap();
    let r = c.response(true).await;
    assert_eq!(r.status, 401);
    assert!(c.closed().await, "1.0 without keep-alive: closed");
}
