//! The held WebSockets as RFC 8441 streams (`--h2-streams`): HTTP/2
//! connections to the proxy, h2c or TLS with ALPN h2, and a WebSocket on
//! each of their streams, as a browser opens them once a server offers
//! extended CONNECT.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;

use super::dial::{dial, Io, Target, Ws};
use super::Args;

/// Opens the connections numbered `range` as RFC 8441 streams,
/// `--h2-streams` to each new HTTP/2 connection (kept in `conns`), the
/// connections opened `--concurrency` streams at a time.
pub(crate) async fn open_batch(
    args: &Args,
    token: &str,
    via: &Target,
    range: std::ops::Range<usize>,
    conns: &mut Vec<H2Sender>,
) -> Result<(Vec<Ws>, usize, Option<String>), String> {
    let ids: Vec<usize> = range.collect();
    let mut held = Vec::new();
    let mut failed = 0usize;
    let mut first_error = None;
    for chunk in ids.chunks(args.h2_streams) {
        let src = args.sources[chunk[0] % args.sources.len()];
        let src = (src != IpAddr::from([127, 0, 0, 1])).then_some(src);
        let sender = tokio::time::timeout(Duration::from_secs(10), h2_connect(via, src, token))
            .await
            .unwrap_or_else(|_| Err("h2 connection timed out".into()))?;
        for wave in chunk.chunks(args.concurrency.max(1)) {
            let mut set = JoinSet::new();
            for _ in wave {
                let mut s = sender.clone();
                let (token, origin, url) =
                    (token.to_string(), args.origin.clone(), via.url.clone());
                set.spawn(async move {
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        h2_websocket(&mut s, &url, &token, origin.as_deref()),
                    )
                    .await
                    .unwrap_or_else(|_| Err("extended CONNECT timed out".into()))
                });
            }
            while let Some(r) = set.join_next().await {
                match r.map_err(|e| e.to_string()).and_then(|r| r) {
                    Ok(ws) => held.push(ws),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        conns.push(sender);
    }
    Ok((held, failed, first_error))
}

pub(crate) type H2Sender = hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>;

/// One HTTP/2 connection to `to` (h2c, or TLS with ALPN h2), once the
/// server's SETTINGS arrived (extended CONNECT needs them): an ordinary
/// request is answered first.
async fn h2_connect(to: &Target, source: Option<IpAddr>, token: &str) -> Result<H2Sender, String> {
    let addr = to.addr;
    let stream = dial(to, source, Some(b"h2")).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .max_concurrent_reset_streams(0)
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("h2 handshake with {addr}: {e}"))?;
    tokio::spawn(conn);
    let scheme = if to.tls.is_some() { "https" } else { "http" };
    let req = http::Request::get(format!("{scheme}://{addr}/"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("first h2 request to {addr}: {e}"))?;
    Ok(sender)
}

/// A WebSocket opened as a stream of `sender`'s connection (RFC 8441).
async fn h2_websocket(
    sender: &mut H2Sender,
    url: &str,
    token: &str,
    origin: Option<&str>,
) -> Result<Ws, String> {
    let uri = url
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(&uri)
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .header("authorization", format!("Bearer {token}"));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let req = req
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    sender
        .ready()
        .await
        .map_err(|e| format!("h2 connection: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("extended CONNECT {uri}: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("extended CONNECT {uri}: status {}", resp.status()));
    }
    let up = hyper::upgrade::on(resp)
        .await
        .map_err(|e| format!("extended CONNECT {uri}: {e}"))?;
    let io: Box<dyn Io> = Box::new(hyper_util::rt::TokioIo::new(up));
    Ok(WebSocketStream::from_raw_socket(
        io,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await)
}
