//! clawgate's own HTTP/1.1 client to the gateway (src/proxy/upstream), on
//! real sockets against a raw-TCP fake gateway that writes its responses
//! by hand: body framing (chunked with extensions and trailers, delimited
//! by close, HEAD, 204, 304), interim 1xx responses, connection reuse and
//! `connection: close`, pooled connections the gateway closed, request
//! bodies (sized and chunked), malformed responses, and the bytes that
//! ride along with a 101.
//!
//! The fake answers by request path and records every request it read,
//! with the connection it came on (numbered from 1 in order of the first
//! request; clawgate's startup probe, which sends nothing, is not counted).

// The healthy `common::Upstream` re-export goes unused here: the gateway
// is the hand-written fake below.
#[allow(unused_imports)]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const ALICE: &str = "alice-wire-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decode a complete chunked body (RFC 9112 §7.1) from the front of `buf`,
/// strictly. `Ok(None)`: incomplete. `Ok(Some((data, used)))`.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[at..at + eol];
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!(
                "bad chunk-size line {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size).unwrap(), 16)
            .map_err(|e| format!("chunk size: {e}"))?;
        at += eol + 2;
        if size == 0 {
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((out, at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}

/// `name: value` lines of a head (after its first line), names lowercased.
fn parse_headers(head: &str) -> (String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (first, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One request as the fake gateway read it.
#[derive(Clone, Debug)]
struct Seen {
    /// Connection number (1 = the first connection that carried a request).
    conn: usize,
    /// Request number on that connection, from 1.
    nth: usize,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    /// The body bytes as they were on the wire (chunked framing included).
    raw_body: Vec<u8>,
    /// The decoded body; `Err` if its chunked framing was invalid.
    body: Result<Vec<u8>, String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

#[derive(Default)]
struct Log {
    conns: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Bytes received on an upgraded (101) connection.
    tunnel_in: Mutex<Vec<u8>>,
    /// Bytes that arrived on a connection the fake then closed unanswered.
    abandoned: Mutex<Vec<u8>>,
}

/// A raw-TCP fake gateway on 127.0.0.1 that answers by request path.
struct Fake {
    addr: SocketAddr,
    log: Arc<Log>,
    task: JoinHandle<()>,
}

impl Fake {
    async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let l = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(s, l.clone()));
            }
        });
        Fake { addr, log, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections that carried at least one request.
    fn conns(&self) -> usize {
        self.log.conns.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen().pop().expect("the gateway saw a request")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one request (head and body) off `s`; `None` at end of stream.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        match timeout(WAIT, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let (line, headers) = parse_headers(&head);
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let chunked =
        header(&headers, "transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let length: usize = header(&headers, "content-length")
        .map(|l| l.parse().expect("a numeric content-length"))
        .unwrap_or(0);
    let (raw_body, body) = if target == "/early-413" {
        // Answered before the body is read (see `respond`).
        (Vec::new(), Ok(Vec::new()))
    } else if chunked {
        loop {
            match decode_chunked(buf) {
                Ok(Some((data, used))) => break (buf.drain(..used).collect(), Ok(data)),
                Ok(None) => {}
                Err(e) => break (std::mem::take(buf), Err(e)),
            }
            match timeout(WAIT, s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break (std::mem::take(buf), Err("cut short".to_string())),
            }
        }
    } else {
        while buf.len() < length {
            match timeout(WAIT, s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
        let b: Vec<u8> = buf.drain(..length).collect();
        (b.clone(), Ok(b))
    };
    Some(Seen {
        conn: 0,
        nth: 0,
        method,
        target,
        headers,
        raw_body,
        body,
    })
}

/// What the fake does with the connection after a response.
enum Next {
    KeepGoing,
    /// Close it (FIN) after this long.
    CloseAfter(Duration),
}

fn plain(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The chunked body /chunked sends: (extension, data) per chunk.
fn chunks() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (";name=value", b"hello".to_vec()),
        ("", (0u8..=255).collect()),
        (
            ";a=1;b=\"quoted\"",
            b"\r\n0\r\n\r\nnot the end\r\n".to_vec(),
        ),
        ("", vec![b'z'; 20_000]),
        (";x", b"!".to_vec()),
    ]
}

fn chunked_body() -> Vec<u8> {
    chunks().into_iter().flat_map(|(_, d)| d).collect()
}

fn chunked_wire() -> Vec<u8> {
    let mut w = Vec::new();
    for (ext, data) in chunks() {
        w.extend_from_slice(format!("{:X}{ext}\r\n", data.len()).as_bytes());
        w.extend_from_slice(&data);
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"0;last=yes\r\nx-checksum: abc\r\nx-more: 1\r\n\r\n");
    w
}

/// The body /until-close sends before closing.
fn until_close_body() -> Vec<u8> {
    (0..40_000u32).map(|i| (i % 251) as u8).collect()
}

/// Write `wire` in pieces cut at `cuts` (in order), pausing between them.
async fn write_pieces(s: &mut TcpStream, wire: &[u8], cuts: &[usize]) {
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        assert!(from < cut && cut <= wire.len(), "cuts in order");
        let _ = s.write_all(&wire[from..cut]).await;
        let _ = s.flush().await;
        from = cut;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn respond(s: &mut TcpStream, req: &Seen, log: &Log) -> Next {
    let path = req.target.split('?').next().unwrap_or_default();
    let hello = format!("conn={} req={}", req.conn, req.nth);
    match path {
        "/chunked" => {
            let mut wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n".to_vec();
            let head_len = wire.len();
            wire.extend_from_slice(&chunked_wire());
            // Cut inside the head, a size line, an extension, data, a CRLF
            // and the trailers.
            let n = wire.len();
            let cuts = [
                20,
                head_len + 3,
                head_len + 9,
                head_len + 300,
                n - 2_000,
                n - 30,
                n - 10,
            ];
            write_pieces(s, &wire, &cuts).await;
            Next::KeepGoing
        }
        "/until-close" => {
            let mut wire =
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n".to_vec();
            wire.extend_from_slice(&until_close_body());
            write_pieces(s, &wire, &[10, 100, 17_000, 30_000]).await;
            Next::CloseAfter(Duration::ZERO)
        }
        "/head" => {
            // To a HEAD: the length a GET would get, and no body bytes.
            let mut wire =
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"
                    .to_vec();
            if req.method != "HEAD" {
                wire.extend_from_slice(b"hello");
            }
            let _ = s.write_all(&wire).await;
            Next::KeepGoing
        }
        "/204" => {
            let _ = s
                .write_all(b"HTTP/1.1 204 No Content\r\nx-status: 204\r\n\r\n")
                .await;
            Next::KeepGoing
        }
        "/304" => {
            // A 304 may carry the length of the representation it stands for.
            let _ = s
                .write_all(
                    b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 10\r\n\r\n",
                )
                .await;
            Next::KeepGoing
        }
        "/early-hints" => {
            let _ = s
                .write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = s.write_all(&plain("200 OK", "", "after hints")).await;
            Next::KeepGoing
        }
        "/continue" => {
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = s.write_all(&plain("200 OK", "", "after continue")).await;
            Next::KeepGoing
        }
        "/interim-together" => {
            // Two interim responses and the final one in a single write.
            let mut wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.js>; rel=preload\r\n\r\n".to_vec();
            wire.extend_from_slice(&plain("200 OK", "", "after both"));
            let _ = s.write_all(&wire).await;
            Next::KeepGoing
        }
        "/close" => {
            let _ = s
                .write_all(&plain("200 OK", "connection: close\r\n", &hello))
                .await;
            Next::CloseAfter(Duration::ZERO)
        }
        "/then-close" => {
            // Keep-alive as far as the head says; closed right after.
            let _ = s.write_all(&plain("200 OK", "", &hello)).await;
            Next::CloseAfter(Duration::ZERO)
        }
        "/then-close-late" => {
            let _ = s.write_all(&plain("200 OK", "", &hello)).await;
            Next::CloseAfter(Duration::from_millis(150))
        }
        "/early-413" => {
            // Refuse at once, then close politely: stop writing and drain
            // what the client is still sending (a lingering close).
            let _ = s
                .write_all(&plain(
                    "413 Content Too Large",
                    "connection: close\r\n",
                    "too big",
                ))
                .await;
            let _ = s.shutdown().await;
            let mut chunk = [0u8; 64 * 1024];
            let drained = async { while matches!(s.read(&mut chunk).await, Ok(k) if k > 0) {} };
            let _ = timeout(WAIT, drained).await;
            Next::CloseAfter(Duration::ZERO)
        }
        "/dribble" => {
            // The head and body a few bytes per write.
            let wire = plain("200 OK", "x-dribbled: yes\r\n", &hello);
            let cuts: Vec<usize> = (1..wire.len()).step_by(7).collect();
            write_pieces(s, &wire, &cuts).await;
            Next::KeepGoing
        }
        "/http10" => {
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{hello}",
                        hello.len()
                    )
                    .as_bytes(),
                )
                .await;
            Next::KeepGoing
        }
        // Malformed answers. The connection stays open afterwards, so a
        // proxy that did not see the fault would wait (504), not 502.
        "/garbage" => {
            let _ = s
                .write_all(b"\x00\x7f\xfe this is not HTTP at all\r\n\r\n")
                .await;
            Next::KeepGoing
        }
        "/two-lengths" => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd")
                .await;
            Next::KeepGoing
        }
        "/huge-head" | "/huge-head-unended" => {
            let mut wire = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
            wire.extend(std::iter::repeat_n(b'a', 70 * 1024));
            if path == "/huge-head" {
                wire.extend_from_slice(b"\r\ncontent-length: 2\r\n\r\nok");
            }
            let _ = s.write_all(&wire).await;
            Next::KeepGoing
        }
        "/many-headers" => {
            let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..150 {
                wire.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
            }
            wire.extend_from_slice(b"content-length: 2\r\n\r\nok");
            let _ = s.write_all(&wire).await;
            Next::KeepGoing
        }
        "/ws" => {
            let Some(key) = req.header("sec-websocket-key") else {
                let _ = s.write_all(&plain("400 Bad Request", "", "no key")).await;
                return Next::KeepGoing;
            };
            let accept = derive_accept_key(key.as_bytes());
            let mut wire = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            // An unmasked text frame "hi" in the same write as the head.
            wire.extend_from_slice(&[0x81, 2, b'h', b'i']);
            let _ = s.write_all(&wire).await;
            let mut buf = [0u8; 1024];
            loop {
                match timeout(WAIT, s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        log.tunnel_in.lock().unwrap().extend_from_slice(&buf[..n])
                    }
                    _ => break,
                }
            }
            Next::CloseAfter(Duration::ZERO)
        }
        _ => {
            // "/plain", "/echo" and anything else: who answered, and what
            // body arrived.
            let body = match &req.body {
                Ok(b) if !b.is_empty() => format!("{hello} body={}", b.len()),
                Ok(_) => hello,
                Err(e) => format!("{hello} bad body: {e}"),
            };
            let _ = s.write_all(&plain("200 OK", "", &body)).await;
            Next::KeepGoing
        }
    }
}

async fn serve(mut s: TcpStream, log: Arc<Log>) {
    let mut buf = Vec::new();
    let mut conn = 0;
    let mut nth = 0;
    while let Some(mut req) = read_request(&mut s, &mut buf).await {
        if conn == 0 {
            conn = log.conns.fetch_add(1, Ordering::SeqCst) + 1;
        }
        nth += 1;
        req.conn = conn;
        req.nth = nth;
        log.seen.lock().unwrap().push(req.clone());
        match respond(&mut s, &req, &log).await {
            Next::KeepGoing => {}
            Next::CloseAfter(d) => {
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                    // Whatever came in meanwhile goes unanswered.
                    let mut chunk = [0u8; 4096];
                    if let Ok(Ok(n)) = timeout(Duration::from_millis(50), s.read(&mut chunk)).await
                    {
                        log.abandoned.lock().unwrap().extend_from_slice(&chunk[..n]);
                    }
                }
                let _ = s.shutdown().await;
                return;
            }
        }
    }
}

/// clawgate in front of a fresh fake; alice's requests go to the fake.
async fn setup() -> (Fake, ConfigDir, clawgate::server::Server) {
    let fake = Fake::start().await;
    let cfg = ConfigDir::new(&[("gw", fake.url())], &[MemberSpec::new("alice", ALICE)]);
    // A response that never completes shows up as a 504 well within WAIT.
    cfg.write_base("[timeouts]\nupstream_response = \"4s\"\n");
    let server = start(&cfg).await;
    (fake, cfg, server)
}

fn bearer() -> String {
    format!("Bearer {ALICE}")
}

async fn alice_get(addr: SocketAddr, path: &str) -> Reply {
    get(addr, path, &[("authorization", &bearer())]).await
}

/// A request as raw bytes, as alice. `extra`: header lines, each ending
/// in CRLF. A non-empty body gets a content-length unless `extra` sets a
/// transfer-encoding.
fn raw_request(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let length = if body.is_empty() || extra.to_ascii_lowercase().contains("transfer-encoding") {
        String::new()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nhost: gw\r\nauthorization: {}\r\n{extra}{length}\r\n",
        bearer()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[derive(Debug)]
struct RawResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResp {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection to clawgate, spoken to byte by byte.
struct RawClient {
    s: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.s.write_all(bytes))
            .await
            .expect("write within 10s")
            .expect("clawgate accepts the bytes");
    }

    /// Read more; false at end of stream. Panics after WAIT.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("clawgate answers within 10s")
        {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Just the next response head (status and headers), consumed.
    async fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            assert!(
                self.fill().await,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let (line, headers) = parse_headers(&head);
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        (status, headers)
    }

    /// The next complete response to a `method` request.
    async fn response(&mut self, method: &str) -> RawResp {
        let (status, headers) = self.head().await;
        let no_body = method == "HEAD" || status / 100 == 1 || status == 204 || status == 304;
        let chunked = header(&headers, "transfer-encoding").is_some_and(|t| t == "chunked");
        let body = if no_body {
            Vec::new()
        } else if chunked {
            loop {
                match decode_chunked(&self.buf) {
                    Ok(Some((data, used))) => {
                        self.buf.drain(..used);
                        break data;
                    }
                    Ok(None) => assert!(self.fill().await, "chunked body cut short"),
                    Err(e) => panic!("clawgate sent a bad chunked body: {e}"),
                }
            }
        } else if let Some(n) = header(&headers, "content-length") {
            let n: usize = n.parse().unwrap();
            while self.buf.len() < n {
                assert!(self.fill().await, "body cut short");
            }
            self.buf.drain(..n).collect()
        } else {
            while self.fill().await {}
            std::mem::take(&mut self.buf)
        };
        RawResp {
            status,
            headers,
            body,
        }
    }

    /// Send a request and read its response.
    async fn exchange(&mut self, method: &str, path: &str, extra: &str, body: &[u8]) -> RawResp {
        self.send(&raw_request(method, path, extra, body)).await;
        self.response(method).await
    }

    /// Nothing more arrives for `d` (and the connection stays open).
    async fn quiet_for(&mut self, d: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 1024];
        match timeout(d, self.s.read(&mut chunk)).await {
            Err(_) => true,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Ok(Err(_)) => false,
        }
    }
}

#[tokio::test]
async fn a_chunked_response_with_extensions_and_trailers_arrives_byte_for_byte() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/chunked", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), chunked_body().len());
    assert!(r.body == chunked_body(), "the body bytes differ");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // The trailers were consumed with the body: the connection is in step
    // and is used again.
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=2");
    assert_eq!(fake.conns(), 1);

    // Through hyper's client as well.
    let r = alice_get(server.addr, "/chunked").await;
    assert_eq!(r.status, 200);
    assert!(r.body == chunked_body(), "the body bytes differ");
}

#[tokio::test]
async fn a_response_delimited_by_close_arrives_whole_and_the_next_goes_on_a_new_connection() {
    let (fake, _cfg, server) = setup().await;
    let r = alice_get(server.addr, "/until-close").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), until_close_body().len());
    assert!(r.body == until_close_body(), "the body bytes differ");

    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=2 req=1");
    assert_eq!(fake.conns(), 2);

    // The same on one client connection, read raw.
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/until-close", "", b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body == until_close_body(), "the body bytes differ");
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    // The /until-close went on the pooled connection 2, which then ended.
    assert_eq!(r.text(), "conn=3 req=1");
    assert_eq!(fake.conns(), 3);
}

#[tokio::test]
async fn a_head_response_has_no_body_and_the_connections_stay_usable() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(&raw_request("HEAD", "/head", "", b"")).await;
    let r = c.response("HEAD").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(
        c.quiet_for(Duration::from_millis(300)).await,
        "no body bytes follow a HEAD response: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    // Keep-alive on both sides: clawgate did not wait for 5 body bytes.
    let r = timeout(Duration::from_secs(5), c.exchange("GET", "/plain", "", b""))
        .await
        .expect("the GET after a HEAD is answered");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=2");
    let r = c.exchange("GET", "/head", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(fake.conns(), 1);
    let seen = fake.seen();
    assert_eq!(seen[0].method, "HEAD");
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body_and_reuse_the_connection() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/204", "", b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-status"), Some("204"));
    assert!(c.quiet_for(Duration::from_millis(200)).await);
    let r = c.exchange("GET", "/304", "", b"").await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(
        c.quiet_for(Duration::from_millis(200)).await,
        "no body bytes after a 304: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=3");
    assert_eq!(fake.conns(), 1, "one upstream connection for all three");

    // Two in a row through hyper's client (new client connections).
    for path in ["/204", "/304"] {
        let r = alice_get(server.addr, path).await;
        assert_eq!(r.status.to_string(), path[1..]);
        assert!(r.body.is_empty());
    }
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn interim_responses_are_skipped_and_the_final_one_is_forwarded() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/early-hints", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "after hints");
    let r = c.exchange("POST", "/continue", "", b"payload").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "after continue");
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.text(), "conn=1 req=3");
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn interim_responses_in_the_same_write_as_the_final_one_are_skipped() {
    let (_fake, _cfg, server) = setup().await;
    let r = alice_get(server.addr, "/interim-together").await;
    assert_eq!(
        r.status,
        200,
        "100 + 103 + 200 in one packet: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(&r.body[..], b"after both");
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let (fake, _cfg, server) = setup().await;
    for i in 1..=20 {
        let r = alice_get(server.addr, "/plain").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("conn=1 req={i}"));
    }
    assert_eq!(fake.conns(), 1);
    assert_eq!(fake.seen().len(), 20);
}

#[tokio::test]
async fn connection_close_gives_one_upstream_connection_per_request() {
    let (fake, _cfg, server) = setup().await;
    for i in 1..=20 {
        let r = alice_get(server.addr, "/close").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, format!("conn={i} req=1"));
        assert!(
            r.header("connection").is_none_or(|v| !v.contains("close")),
            "the gateway's connection: close is this hop's"
        );
    }
    assert_eq!(fake.conns(), 20);
}

#[tokio::test]
async fn a_pooled_connection_the_gateway_closed_is_not_used() {
    let (fake, _cfg, server) = setup().await;
    // Closed right after the answer, the next request at once.
    let r = alice_get(server.addr, "/then-close").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"conn=1 req=1");
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=2 req=1");
    assert_eq!(fake.conns(), 2);

    // Closed a while before the next request, which has a body (not
    // replayable): the dead connection must be noticed before use.
    let r = alice_get(server.addr, "/then-close").await;
    assert_eq!(&r.body[..], b"conn=2 req=2");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = request(
        server.addr,
        "POST",
        "/echo",
        &[("authorization", &bearer())],
        "payload",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=3 req=1 body=7");
    assert_eq!(fake.conns(), 3);
}

#[tokio::test]
async fn a_get_written_as_the_gateway_closes_its_idle_connection_is_replayed() {
    let (fake, cfg, server) = setup().await;
    let r = alice_get(server.addr, "/then-close-late").await;
    assert_eq!(&r.body[..], b"conn=1 req=1");
    // Sent on the pooled connection, which the gateway closes without
    // answering: sent again on a new one.
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=2 req=1");
    assert_eq!(fake.conns(), 2);
    let abandoned = String::from_utf8_lossy(&fake.log.abandoned.lock().unwrap()).into_owned();
    assert!(
        abandoned.starts_with("GET /plain HTTP/1.1\r\n"),
        "the first attempt went on the closing connection: {abandoned:?}"
    );
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["status"], 200);
}

#[tokio::test]
async fn request_bodies_arrive_with_exact_bytes_sized_or_chunked() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;

    // Sized: 100 000 binary bytes.
    let sized: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = c.exchange("POST", "/echo", "", &sized).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=1 body=100000");
    let seen = fake.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.header("content-length"), Some("100000"));
    assert_eq!(seen.header("transfer-encoding"), None);
    assert!(seen.raw_body == sized, "the sized body differs upstream");

    // Chunked by the client, in pieces, with an extension and a trailer.
    let parts: [&[u8]; 4] = [b"first,", &[0u8, 1, 2, 0xff, b'\r', b'\n'], b"", b"last"];
    let want: Vec<u8> = parts.concat();
    c.send(&raw_request(
        "POST",
        "/echo",
        "transfer-encoding: chunked\r\n",
        b"",
    ))
    .await;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        let mut piece = format!("{:x};ext=1\r\n", p.len()).into_bytes();
        piece.extend_from_slice(p);
        piece.extend_from_slice(b"\r\n");
        c.send(&piece).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    c.send(b"0\r\nx-trailer: t\r\n\r\n").await;
    let r = c.response("POST").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("conn=1 req=2 body={}", want.len()));
    let seen = fake.last();
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(seen.body.as_deref(), Ok(&want[..]));

    // An empty chunked body is still a valid chunked body.
    let r = c
        .exchange(
            "POST",
            "/echo",
            "transfer-encoding: chunked\r\n",
            b"0\r\n\r\n",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=3");
    let seen = fake.last();
    assert_eq!(seen.body.as_deref(), Ok(&b""[..]));

    // A large chunked body in one go (several frames on clawgate's side).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut wire = Vec::new();
    for piece in big.chunks(40_000) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let r = c
        .exchange("PUT", "/echo", "transfer-encoding: chunked\r\n", &wire)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=4 body=300000");
    let seen = fake.last();
    assert!(
        seen.body.as_ref().is_ok_and(|b| *b == big),
        "the big body differs"
    );

    // All on one upstream connection: every body was framed exactly.
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.text(), "conn=1 req=5");
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn malformed_responses_give_502_upstream_reset_and_the_proxy_keeps_serving() {
    let (fake, _cfg, server) = setup().await;
    let paths = [
        "/garbage",
        "/two-lengths",
        "/huge-head",
        "/huge-head-unended",
        "/many-headers",
    ];
    for (n, path) in paths.iter().enumerate() {
        let r = alice_get(server.addr, path).await;
        assert_eq!(
            r.status,
            502,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let b = r.json();
        assert_eq!(b["reason"], "upstream_reset", "{path}");
        assert_eq!(b["request_id"], r.request_id());
        let times = fake.seen().iter().filter(|s| s.target == *path).count();
        assert_eq!(times, 1, "{path} is not replayed");

        let r = alice_get(server.addr, "/plain").await;
        assert_eq!(r.status, 200, "after {path}");
        assert!(r.body.starts_with(b"conn="));
        let m = metrics(server.admin_addr).await;
        assert_eq!(
            sample(
                &m,
                r#"clawgate_upstream_errors_total{kind="reset",upstream="gw"}"#
            ),
            (n + 1) as f64,
            "after {path}"
        );
    }
}

#[tokio::test]
async fn bytes_sent_with_the_101_head_reach_the_client_after_it() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(
        format!(
            "GET /ws HTTP/1.1\r\nhost: gw\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nx-clawgate-token: {ALICE}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let (status, headers) = c.head().await;
    assert_eq!(status, 101);
    assert_eq!(
        header(&headers, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    while c.buf.len() < 4 {
        assert!(c.fill().await, "closed after the 101 with {:?}", c.buf);
    }
    assert_eq!(
        c.buf,
        [0x81, 2, b'h', b'i'],
        "the frame that came with the 101"
    );

    // And the other way: a masked client frame reaches the gateway intact.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'y' ^ 1, b'o' ^ 2];
    c.send(&frame).await;
    let mut got = Vec::new();
    for _ in 0..250 {
        got = fake.log.tunnel_in.lock().unwrap().clone();
        if got.len() >= frame.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, frame);
    let seen = fake.last();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn a_response_head_dribbled_a_few_bytes_at_a_time_is_parsed() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/dribble", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-dribbled"), Some("yes"));
    assert_eq!(r.text(), "conn=1 req=1");
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.text(), "conn=1 req=2");
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn an_http_1_0_response_without_keep_alive_ends_its_connection() {
    let (fake, _cfg, server) = setup().await;
    for i in 1..=3 {
        let r = alice_get(server.addr, "/http10").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("conn={i} req=1"));
    }
    assert_eq!(fake.conns(), 3);
}

#[tokio::test]
async fn an_early_refusal_while_the_body_is_still_being_sent_reaches_the_client() {
    let (fake, _cfg, server) = setup().await;
    // Far more than the socket buffers hold: the gateway answers long
    // before clawgate has written it all.
    let body = vec![b'x'; 8 * 1024 * 1024];
    let mut c = RawClient::connect(server.addr).await;
    c.send(&raw_request("POST", "/early-413", "", &body)).await;
    let r = c.response("POST").await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.text(), "too big");
    // And the proxy keeps serving.
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200);
    assert_eq!(fake.conns(), 2);
}
