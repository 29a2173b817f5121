//! WebSocket clients for tests: an upgrade over any stream with extra
//! headers, and a member's upgrade over plain TCP with its token.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::WebSocketStream;

/// Upgrade to `url` over `stream` (plain TCP or TLS) with extra request
/// headers. Returns the socket and the request ID of the 101.
pub async fn open<S>(stream: S, url: &str, headers: &[(&str, &str)]) -> (WebSocketStream<S>, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    .expect("upgrade answered within 10s")
    .unwrap_or_else(|e| panic!("upgrade refused: {e:?}"));
    let rid = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id on the 101")
        .to_str()
        .unwrap()
        .to_string();
    (ws, rid)
}

/// `ws://addr{path}` over plain TCP, with `x-clawgate-token: token` on the
/// upgrade (as the OpenClaw CLI sends it).
pub async fn open_ws(
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> (WebSocketStream<tokio::net::TcpStream>, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    open(
        tcp,
        &format!("ws://{addr}{path}"),
        &[("x-clawgate-token", token)],
    )
    .await
}
