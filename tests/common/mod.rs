//! Shared harness for integration tests: a real upstream server, a config
//! directory builder, an in-process clawgate on ephemeral loopback ports,
//! and small HTTP clients. Everything binds 127.0.0.1:0.
#![allow(dead_code)]

pub mod process;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// Not every test crate uses every helper.
#[allow(unused_imports)]
pub use process::{bearer, cli, cli_async, member_request, Out, Proc};
pub use upstream::Upstream;
#[allow(unused_imports)]
pub use ws::{open, open_ws};

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// One member file, written with mode 0600 unless told otherwise.
#[derive(Clone)]
pub struct MemberSpec {
    pub name: String,
    pub lines: BTreeMap<String, String>,
    pub mode: u32,
}

impl MemberSpec {
    /// A member with one token, CLI + one browser origin, loopback egress.
    pub fn new(name: &str, token: &str) -> Self {
        let mut lines = BTreeMap::new();
        lines.insert("TOKEN_SHA256".into(), sha256_hex(token));
        lines.insert("ORIGINS".into(), format!("none https://{name}.example.com"));
        lines.insert("EGRESS_CIDRS".into(), "127.0.0.0/8 ::1".into());
        lines.insert("SCOPES".into(), "operator.read".into());
        MemberSpec {
            name: name.into(),
            lines,
            mode: 0o600,
        }
    }

    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.lines.insert(key.into(), value.into());
        self
    }

    pub fn unset(mut self, key: &str) -> Self {
        self.lines.remove(key);
        self
    }

    pub fn render(&self) -> String {
        self.lines
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\"\n"))
            .collect()
    }
}

/// A config directory in a temp dir.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
    /// Extra TOML appended after the generated base sections.
    pub base: String,
}

impl ConfigDir {
    /// `upstreams`: (name, url). The first is the default upstream.
    pub fn new(upstreams: &[(&str, String)], members: &[MemberSpec]) -> Self {
        Self::with_listen(upstreams, members, "")
    }

    /// `listen_extra`: extra lines inside `[listen]` (TLS settings).
    pub fn with_listen(
        upstreams: &[(&str, String)],
        members: &[MemberSpec],
        listen_extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("members")).unwrap();
        let mut base = format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n{listen_extra}\n[admin]\naddr = \"127.0.0.1:0\"\n\n[log]\naccess = \"access.log\"\n\n"
        );
        for (name, url) in upstreams {
            base.push_str(&format!("[upstreams.{name}]\nurl = \"{url}\"\n\n"));
        }
        base.push_str(&format!(
            "[members]\ndefault_upstream = \"{}\"\n\n",
            upstreams[0].0
        ));
        let cd = ConfigDir { dir, base };
        cd.write_base("");
        for m in members {
            cd.write_member(m);
        }
        cd
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrite clawgate.toml: the generated base plus `extra` TOML.
    pub fn write_base(&self, extra: &str) {
        fs::write(
            self.path().join("clawgate.toml"),
            format!("{}{extra}", self.base),
        )
        .unwrap();
    }

    pub fn write_member(&self, m: &MemberSpec) {
        let p = self.member_path(&m.name);
        fs::write(&p, m.render()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(m.mode)).unwrap();
    }

    pub fn write_raw_member(&self, name: &str, text: &str) {
        let p = self.member_path(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }

    pub fn remove_member(&self, name: &str) {
        fs::remove_file(self.member_path(name)).unwrap();
    }

    pub fn member_path(&self, name: &str) -> PathBuf {
        self.path().join("members").join(format!("{name}.env"))
    }

    /// Access-log lines written so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait (bounded) until an access-log line with this request ID appears.
    pub async fn log_line(&self, request_id: &str) -> serde_json::Value {
        self.wait_line(|l| l["request_id"] == request_id)
            .await
            .unwrap_or_else(|| panic!("no access-log line for request {request_id}"))
    }

    /// Wait (bounded) for this request's access-log line of kind
    /// "websocket", which is written when the tunnel closes.
    pub async fn websocket_line(&self, request_id: &str) -> Option<serde_json::Value> {
        self.wait_line(|l| l["request_id"] == request_id && l["kind"] == "websocket")
            .await
    }

    /// The first access-log line `wanted` accepts, polled for up to 2 s.
    async fn wait_line(
        &self,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        for _ in 0..100 {
            if let Some(l) = self.access_log().into_iter().find(|l| wanted(l)) {
                return Some(l);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Start clawgate in-process on the config dir.
pub async fn start(cfg: &ConfigDir) -> clawgate::runtime::server::Server {
    clawgate::runtime::server::Server::start(cfg.path())
        .await
        .unwrap_or_else(|e| panic!("clawgate failed to start: {e}"))
}

/// A response, fully read.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn request_id(&self) -> &str {
        self.header("x-request-id")
            .expect("x-request-id on every response")
    }
}

/// HTTP/1.1 request through hyper's client (keep-alive pool per call).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response within 10s")
        .expect("request succeeds at the HTTP level");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, "").await
}

/// Send raw bytes, read until the server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Read from `s` into `out` until the peer closes (EOF or an error).
/// Unbounded: callers put it under a timeout, and what arrived is in
/// `out` either way.
pub async fn read_until_close(s: &mut TcpStream, out: &mut Vec<u8>) {
    read_until(s, out, |_| false).await
}

/// Read from `s` into `out` until a head's blank line has arrived or the
/// peer closes; the connection is left open. Unbounded, as
/// [`read_until_close`].
pub async fn read_until_head_end(s: &mut TcpStream, out: &mut Vec<u8>) {
    read_until(s, out, |got| got.windows(4).any(|w| w == b"\r\n\r\n")).await
}

/// Read from `s` into `out` until `done(out)` or the peer closes.
async fn read_until(s: &mut TcpStream, out: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut buf = [0u8; 8192];
    while !done(out) {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The admin listener's /metrics text.
pub async fn metrics(admin: SocketAddr) -> String {
    String::from_utf8(get(admin, "/metrics", &[]).await.body.to_vec()).unwrap()
}

/// Poll the admin listener's `series` until it reads `want`, for up to
/// 2 s; the last value read. A series still absent at the end panics: a
/// metric that is never written cannot have "reached" anything, 0
/// included.
pub async fn sample_reaches(admin: SocketAddr, series: &str, want: f64) -> f64 {
    let mut last = None;
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics(admin).await;
        last = try_sample(&text, series);
        if last == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last.unwrap_or_else(|| panic!("no sample {series} on the admin listener within 2 s:\n{text}"))
}

/// Value of one sample line (`name{labels}`). Panics, showing the
/// metrics, when there is no such line: a missing series is never read as
/// 0. A caller for whom "absent" means 0 says so with [`try_sample`].
pub fn sample(metrics: &str, series: &str) -> f64 {
    try_sample(metrics, series)
        .unwrap_or_else(|| panic!("no sample {series} in the metrics:\n{metrics}"))
}

/// Value of one sample line (`name{labels}`), `None` when absent.
pub fn try_sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let v = l.strip_prefix(series)?.strip_prefix(' ')?;
        Some(
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("sample {series} is not a number ({e}): {l}")),
        )
    })
}

/// A response read off a raw socket: status line, headers, body text.
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    /// Parse the first response in `text` (as returned by [`raw`]).
    pub fn parse(text: &str) -> RawReply {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        RawReply {
            status,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// A loopback address where nothing listens: bound, then released.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Every sample of one metric family, `{labels}` → value (`""` when the
/// sample has no labels).
pub fn series(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with('{') || rest.starts_with(' '))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Is `s` a hyphenated UUID of version 7?
pub fn is_uuid_v7(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.get_version_num() == 7) && s.len() == 36
}

/// One HTTP/1.1 keep-alive connection to `addr`: every request sent on the
/// returned sender travels on it, in order (for per-connection caches).
pub async fn keep_alive(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// One HTTP/2 connection to `addr` by prior knowledge (h2c): every request
/// sent on the returned sender is a stream of it.
pub async fn h2c(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c prior knowledge is spoken");
    tokio::spawn(conn);
    sender
}

/// This process's resident set in KiB (in-process tests: the proxy's too).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The next close frame on `ws` within `within`, or `None` if it ended
/// without one (a cut connection) or none came.
pub async fn close_frame<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    within: Duration,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let wait = async {
        loop {
            match futures_util::StreamExt::next(ws).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => return frame,
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// Poll until `token` gets `status` from the proxy at `addr` (a reload
/// applied), bounded by `within`.
pub async fn eventually_status(addr: SocketAddr, token: &str, status: u16, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let got = get(addr, "/", &[("authorization", &bearer(token))])
            .await
            .status;
        if got == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "token still gets {got}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
