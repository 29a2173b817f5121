//! A real upstream for tests: a hyper server on 127.0.0.1:0.
//!
//! - any path: 200, JSON body `{"method","path","headers":{name:[values]},
//!   "body_len","body_sha256"}` describing exactly what arrived (so tests
//!   assert what the gateway saw);
//! - `/sse`: `text/event-stream`, sends `data: first`, then waits for
//!   `release_sse()` before `data: last`;
//! - `/ws`: WebSocket echo (tokio-tungstenite);
//! - `/ws-headers`: WebSocket echo whose first text message is the JSON
//!   object of the upgrade request's headers (`{name:[values]}`);
//! - `/slow`: answers after 3 s;
//! - `/set-cookie`: 200 with three `Set-Cookie` fields, `theme=dark`,
//!   `clawgate_session=from-the-gateway; Path=/` (the proxy's own cookie
//!   name) and `lang=en; Path=/`;
//! - `/status/NNN`: answers with that status.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// Close frames the `/ws` echo received: (code, reason). Shared by every
/// upstream in the test binary; tests pick theirs by request ID.
pub static WS_CLOSES: Mutex<Vec<(u16, String)>> = Mutex::new(Vec::new());

pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    /// `METHOD path?query` of every request, in arrival order.
    seen: Arc<Mutex<Vec<String>>>,
    /// The connections being served, for [`Upstream::kill`].
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    sse_release: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Upstream {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sse_release = Arc::new(Notify::new());
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (r, s, n, c) = (
            requests.clone(),
            seen.clone(),
            sse_release.clone(),
            conns.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, s, n) = (r.clone(), s.clone(), n.clone());
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, r.clone(), s.clone(), n.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
                let mut open = c.lock().unwrap();
                open.retain(|h: &tokio::task::AbortHandle| !h.is_finished());
                open.push(conn.abort_handle());
            }
        });
        Upstream {
            addr,
            requests,
            seen,
            conns,
            sse_release,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn release_sse(&self) {
        self.sse_release.notify_waiters();
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `METHOD path?query` of every request received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Stop accepting and drop the listener (in-flight tasks keep going).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Like a crashed process: stop accepting and drop every connection
    /// being served (upgraded WebSockets, already handed off, excepted).
    pub fn kill(&self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|e| match e {}).boxed()
}

async fn handle(
    mut req: Request<Incoming>,
    count: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    sse: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    count.fetch_add(1, Ordering::SeqCst);
    seen.lock()
        .unwrap()
        .push(format!("{} {}", req.method(), req.uri()));
    let path = req.uri().path().to_string();
    if path == "/ws-headers" {
        return Ok(ws_headers(req));
    }
    if path == "/ws" {
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            return Ok(Response::builder()
                .status(400)
                .body(full("no key"))
                .unwrap());
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = on.await else { return };
            let mut ws =
                WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Close(frame) = &msg {
                    if let Some(f) = frame {
                        if let Ok(mut closes) = WS_CLOSES.lock() {
                            closes.push((u16::from(f.code), f.reason.to_string()));
                        }
                    }
                    break;
                }
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(full(""))
            .unwrap());
    }
    if path == "/sse" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let notified = sse.clone();
        tokio::spawn(async move {
            let wait = notified.notified();
            let _ = tx
                .send(Ok(Frame::data(Bytes::from("data: first\n\n"))))
                .await;
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
            let _ = tx
                .send(Ok(Frame::data(Bytes::from("data: last\n\n"))))
                .await;
        });
        let stream = tokio_stream_from(rx);
        return Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap());
    }
    // A gateway that names its own request ID in the response.
    if path == "/own-request-id" {
        return Ok(Response::builder()
            .header("x-request-id", "the-gateways-own")
            .body(full("own id"))
            .unwrap());
    }
    if path == "/set-cookie" {
        return Ok(Response::builder()
            .header("set-cookie", "theme=dark")
            .header("set-cookie", "clawgate_session=from-the-gateway; Path=/")
            .header("set-cookie", "lang=en; Path=/")
            .body(full("cookies"))
            .unwrap());
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return Ok(Response::new(full("slow done")));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        return Ok(Response::builder()
            .status(code)
            .body(full("status"))
            .unwrap());
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v = serde_json::json!({
        "method": method,
        "path": pq,
        "headers": headers,
        "body_len": body.len(),
        "body_sha256": hex::encode(sha2::Sha256::digest(&body)),
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", "yes")
        .body(full(v.to_string()))
        .unwrap())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `/ws-headers`: accept the upgrade, send the request headers as JSON in
/// the first text message, then echo text and binary messages.
fn ws_headers(mut req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder()
            .status(400)
            .body(full("no key"))
            .unwrap();
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let first = serde_json::json!(headers).to_string();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
        if ws.send(first.into()).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(""))
        .unwrap()
}
