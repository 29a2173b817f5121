//! The probe's WebSocket step: upgrade as the member, then one round
//! trip: our own text echoed back, or the server's first frame (OpenClaw
//! greets a new connection with a challenge).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::*;

pub(super) async fn ws_step(s: &Setup, ws_path: &str) -> Step {
    let t = &s.target;
    let mut step = new_step("websocket", format!("upgrade {ws_path}"));
    let scheme = if t.tls { "wss" } else { "ws" };
    let mut req = match format!("{scheme}://{}{ws_path}", t.authority).into_client_request() {
        Ok(r) => r,
        Err(e) => {
            step.detail = format!("bad WebSocket URL: {e}");
            return step;
        }
    };
    if let Some(tok) = &s.token {
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, tok.clone());
    }
    if let Some(o) = &s.origin {
        req.headers_mut().insert(http::header::ORIGIN, o.clone());
    }
    req.headers_mut().insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("clawgate-probe"),
    );
    let t0 = Instant::now();
    let (stream, _) = match connect(s).await {
        Ok(c) => c,
        Err(e) => {
            step.detail = e;
            return step;
        }
    };
    step.connect_ms = Some(ms(t0.elapsed()));
    let t1 = Instant::now();
    let up = tokio::time::timeout(s.timeout, tokio_tungstenite::client_async(req, stream)).await;
    let mut ws = match up {
        Err(_) => {
            step.detail = format!("no upgrade response within {:?}", s.timeout);
            return step;
        }
        Ok(Err(WsError::Http(resp))) => {
            step.latency_ms = Some(ms(t1.elapsed()));
            step.status = Some(resp.status().as_u16());
            step.request_id = request_id(resp.headers());
            explain_body(&mut step, resp.body().as_deref().unwrap_or_default());
            step.detail = format!(
                "upgrade refused with {} (expected 101)",
                resp.status().as_u16()
            );
            return step;
        }
        Ok(Err(e)) => {
            step.detail = format!("upgrade failed: {e}");
            return step;
        }
        Ok(Ok((ws, resp))) => {
            step.latency_ms = Some(ms(t1.elapsed()));
            step.status = Some(resp.status().as_u16());
            step.request_id = request_id(resp.headers());
            ws
        }
    };
    // A server that speaks first (OpenClaw sends a challenge) is left
    // alone; a quiet one (an echo upstream) gets our text to send back.
    let greeting = tokio::time::timeout(GREETING_WAIT.min(s.timeout), first_frame(&mut ws)).await;
    let outcome = match greeting {
        Ok(Ok(f)) => Ok(format!("101, first frame from the server ({f})")),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let payload = format!(
                "clawgate-probe {}",
                step.request_id.as_deref().unwrap_or("-")
            );
            match ws.send(Message::text(payload.clone())).await {
                Err(e) => Err(format!("sending a message failed: {e}")),
                Ok(()) => match tokio::time::timeout(s.timeout, first_frame(&mut ws)).await {
                    Ok(Ok(Frame::Text(t))) if t == payload => {
                        Ok("101, text message echoed back".to_string())
                    }
                    Ok(Ok(f)) => Ok(format!("101, first frame from the server ({f})")),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(format!("no frame within {:?}", s.timeout)),
                },
            }
        }
    };
    match outcome {
        Ok(detail) => {
            step.pass = true;
            step.detail = detail;
            // Timed by a ping the server's WebSocket stack answers itself,
            // so the figure is one round trip whatever the server says
            // first, and never the greeting wait above.
            match ping_round_trip(&mut ws, s.timeout).await {
                Ok(rtt) => step.round_trip_ms = Some(ms(rtt)),
                Err(e) => step.detail = format!("{}; {e}", step.detail),
            }
        }
        Err(e) => step.detail = format!("101, then {e}"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    step
}

/// Send a ping and time its pong (RFC 6455 §5.5.3: the peer answers a
/// ping with the same payload); data frames in between are skipped.
async fn ping_round_trip<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    limit: Duration,
) -> Result<Duration, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    const PAYLOAD: &[u8] = b"clawgate-probe-rtt";
    let t = Instant::now();
    ws.send(Message::Ping(PAYLOAD.to_vec().into()))
        .await
        .map_err(|e| format!("sending a ping failed: {e}"))?;
    let pong = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p.as_ref() == PAYLOAD => return Ok(t.elapsed()),
                Some(Ok(Message::Close(_))) | None => {
                    return Err("closed before answering the ping".to_string())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("WebSocket error awaiting the pong: {e}")),
            }
        }
    };
    tokio::time::timeout(limit, pong)
        .await
        .map_err(|_| format!("no pong within {limit:?}"))?
}

/// How long a fresh WebSocket is given to speak first.
const GREETING_WAIT: Duration = Duration::from_millis(500);

/// A data frame received on the probe's WebSocket.
enum Frame {
    Text(String),
    Binary(usize),
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Text(t) => write!(f, "{} bytes of text", t.len()),
            Frame::Binary(n) => write!(f, "{n} bytes binary"),
        }
    }
}

/// The next data frame; control frames are skipped, a close is an error.
async fn first_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Result<Frame, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(Frame::Text(t.as_str().to_string())),
            Some(Ok(Message::Binary(b))) => return Ok(Frame::Binary(b.len())),
            Some(Ok(Message::Close(c))) => {
                return Err(match c {
                    Some(c) => format!("the server closed the WebSocket: {} {}", c.code, c.reason),
                    None => "the server closed the WebSocket".to_string(),
                })
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("WebSocket error: {e}")),
            None => return Err("the connection closed before any frame".to_string()),
        }
    }
}
