//! The fake gateway: raw TCP on 127.0.0.1, answering by request path
//! with responses written by hand, recording every request it read.

use super::*;

/// One request as the fake gateway read it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// Connection number (1 = the first connection that carried a request).
    pub(crate) conn: usize,
    /// Request number on that connection, from 1.
    pub(crate) nth: usize,
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    /// The body bytes as they were on the wire (chunked framing included).
    pub(crate) raw_body: Vec<u8>,
    /// The decoded body; `Err` if its chunked framing was invalid.
    pub(crate) body: Result<Vec<u8>, String>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

#[derive(Default)]
pub(crate) struct Log {
    pub(crate) conns: AtomicUsize,
    pub(crate) seen: Mutex<Vec<Seen>>,
    /// Bytes received on an upgraded (101) connection.
    pub(crate) tunnel_in: Mutex<Vec<u8>>,
    /// Bytes that arrived on a connection the fake then closed unanswered.
    pub(crate) abandoned: Mutex<Vec<u8>>,
}

/// A raw-TCP fake gateway on 127.0.0.1 that answers by request path.
pub(crate) struct Fake {
    pub(crate) addr: SocketAddr,
    pub(crate) log: Arc<Log>,
    pub(crate) task: JoinHandle<()>,
}

impl Fake {
    pub(crate) async fn start() -> Fake {
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

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections that carried at least one request.
    pub(crate) fn conns(&self) -> usize {
        self.log.conns.load(Ordering::SeqCst)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    pub(crate) fn last(&self) -> Seen {
        self.seen().pop().expect("the gateway saw a request")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one request (head and body) off `s`; `None` at end of stream.
pub(crate) async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
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
    if target == "/expect-100" {
        // Asked to, the gateway invites the body before reading it.
        let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    let (raw_body, body) = if target == "/early-413" || target == "/expect-413" {
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

/// How long `/stray` waits between its answer and the stray response.
pub(crate) const STRAY_AFTER: Duration = Duration::from_millis(400);

/// What the fake does with the connection after a response.
pub(crate) enum Next {
    KeepGoing,
    /// Close it (FIN) after this long.
    CloseAfter(Duration),
}

pub(crate) fn plain(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The chunked body /chunked sends: (extension, data) per chunk.
pub(crate) fn chunks() -> Vec<(&'static str, Vec<u8>)> {
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

pub(crate) fn chunked_body() -> Vec<u8> {
    chunks().into_iter().flat_map(|(_, d)| d).collect()
}

pub(crate) fn chunked_wire() -> Vec<u8> {
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
pub(crate) fn until_close_body() -> Vec<u8> {
    (0..40_000u32).map(|i| (i % 251) as u8).collect()
}

/// Write `wire` in pieces cut at `cuts` (in order), pausing between them.
pub(crate) async fn write_pieces(s: &mut TcpStream, wire: &[u8], cuts: &[usize]) {
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        assert!(from < cut && cut <= wire.len(), "cuts in order");
        let _ = s.write_all(&wire[from..cut]).await;
        let _ = s.flush().await;
        from = cut;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) async fn respond(s: &mut TcpStream, req: &Seen, log: &Log) -> Next {
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
        "/head-chunked" | "/head-close" | "/head-1234" => {
            // A HEAD answered with the framing a GET would get: chunked,
            // delimited by close (no length at all), or a length.
            let framing = match path {
                "/head-chunked" => "transfer-encoding: chunked\r\n",
                "/head-close" => "",
                _ => "content-length: 1234\r\n",
            };
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{framing}\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            if req.method == "HEAD" {
                return Next::KeepGoing;
            }
            let _ = s
                .write_all(&plain("500 Internal Server Error", "", "HEAD only"))
                .await;
            Next::CloseAfter(Duration::ZERO)
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
        "/expect-413" => {
            // Refuse at once and close, without reading a byte of the body.
            let _ = s
                .write_all(&plain(
                    "413 Content Too Large",
                    "connection: close\r\n",
                    "refused early",
                ))
                .await;
            Next::CloseAfter(Duration::ZERO)
        }
        "/stray" | "/hooks/stray" => {
            // A complete answer, then, unasked, a second one naming whom
            // the first was for: what a confused gateway could leak.
            let who = req.header("x-forwarded-user").unwrap_or("-");
            let _ = s.write_all(&plain("200 OK", "", &hello)).await;
            tokio::time::sleep(STRAY_AFTER).await;
            let stray = format!("STRAY after conn={} req={} for={who}", req.conn, req.nth);
            let _ = s.write_all(&plain("200 OK", "", &stray)).await;
            Next::KeepGoing
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

pub(crate) async fn serve(mut s: TcpStream, log: Arc<Log>) {
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
