//! The HTTP/1.1 client to the gateway, and what its failures mean.
//!
//! clawgate speaks HTTP/1.1 to the gateway itself rather than through
//! hyper's client: a request's head (and first body bytes) go out in one
//! write from the request's own task, and the response head is parsed
//! there too, with no connection task or channel between them, so a
//! proxied request pays for no hand-off between tasks.
//!
//! - [`wire`]: request head encoding, response head parsing, framing.
//! - [`conn`]: a connection with its buffers, the LIFO pool of idle ones,
//!   and the raw stream a 101 hands to a tunnel.
//! - [`pools`]: one pool per upstream and compartment (member, or the
//!   public routes), so connections never pass between members.
//! - [`chunked`]: the chunked transfer coding, decoded as bytes arrive.
//! - [`body`]: the response body, read off the connection as it arrives;
//!   the connection returns to its pool when the body ends.
//! - [`health`]: which gateways are failing, said once on stderr.
//!
//! Failures are sorted into a few kinds, each with its status and a label
//! for `clawgate_upstream_errors_total{kind}`.

mod body;
mod chunked;
mod conn;
mod error;
mod health;
mod pools;
mod response_head;
pub mod wire;

pub use body::UpstreamBody;
pub use conn::Upgraded;
use error::classify_body;
pub use error::UpstreamError;

use std::future::Future;
use std::time::Duration;

use http::uri::Authority;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use tokio::net::TcpStream;

use crate::message::HeadFields;
use conn::{Connection, Elapsed};
use pools::Pools;
use response_head::{Framing, ResponseHead};

/// The body sent upstream: the client's body, capped at `max_body_bytes`.
pub type OutBody = Limited<crate::message::RequestBody>;

/// How long each wait of an exchange may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP connect to the gateway (502 after).
    pub connect: Duration,
    /// The gateway taking the request bytes, then its response head once
    /// the request is sent (504 after). A long upload that keeps moving is
    /// not cut by it.
    pub response: Duration,
    /// The client's next body bytes, mid-body (408 after): a client that
    /// stops sending does not hold a gateway connection.
    pub body_idle: Duration,
}

/// A request ready for the wire.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// The complete head (see `headers::write_request_head`).
    pub head: &'a [u8],
    pub body: OutBody,
    /// The head announces chunked transfer coding: the body is sent so.
    pub chunked: bool,
    /// The client sent `Expect: 100-continue` (forwarded in the head):
    /// the gateway is asked before the body is read (see [`round_trip`]).
    pub expect_continue: bool,
}

/// How long the gateway has to answer `Expect: 100-continue` before the
/// body is sent anyway (RFC 9110 §10.1.1; curl waits as long).
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// The gateway client: its idle connections, per upstream and compartment.
#[derive(Default)]
pub struct UpstreamClient {
    pools: Pools,
    /// Which gateways are failing, for stderr.
    pub health: health::Health,
}

/// How an attempt failed, and whether it may be made again on a fresh
/// connection.
struct Failure {
    error: UpstreamError,
    /// Nothing of the request can have been acted on: the write failed,
    /// or the request is idempotent and no response byte arrived.
    replayable: bool,
}

impl Failure {
    fn fatal(error: UpstreamError) -> Self {
        Failure {
            error,
            replayable: false,
        }
    }
}

impl UpstreamClient {
    pub fn new() -> Self {
        Self::default()
    }

    async fn connect(
        authority: &Authority,
        timeout: Duration,
    ) -> Result<Box<Connection>, UpstreamError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(|_| UpstreamError::ConnectRefused)?;
        let _ = stream.set_nodelay(true);
        Ok(Connection::new(stream))
    }

    /// Send `req` (origin-form URI, `Host` already set) to `authority`
    /// for `member` (`None`: a public route): on a connection pooled for
    /// the same if one is open, else a new one. A request
    /// without a body that a pooled connection failed before any answer
    /// is sent again once, on a new connection (the gateway may have
    /// closed the idle one as we wrote).
    ///
    /// An async block, not an `async fn`, for the reason given at
    /// `proxy::forward`'s: this future is moved with forward's.
    #[allow(clippy::manual_async_fn)]
    pub fn send<'a>(
        &'a self,
        authority: &'a Authority,
        member: Option<&'a str>,
        mut req: Outgoing<'a>,
        timeouts: Timeouts,
    ) -> impl Future<Output = Result<(Response<UpstreamBody>, HeadFields), UpstreamError>> + 'a
    {
        async move {
            let pool = self.pools.get(authority.as_str(), member);
            let bodiless = req.body.is_end_stream();
            let (conn, head) = loop {
                let (mut conn, pooled) = match pool.take() {
                    Some(c) => (c, true),
                    None => (Self::connect(authority, timeouts.connect).await?, false),
                };
                conn.write.clear();
                conn.write.extend_from_slice(req.head);
                let sent = round_trip(
                    &mut conn,
                    req.method,
                    &mut req.body,
                    (req.chunked, req.expect_continue),
                    timeouts,
                );
                match sent.await {
                    Ok(head) => break (conn, head),
                    Err(f) if pooled && bodiless && f.replayable => continue,
                    Err(f) => return Err(f.error),
                }
            };
            let reuse = head.keep_alive.then_some(pool);
            let mut resp = Response::new(UpstreamBody::new(head.framing, conn, reuse));
            *resp.status_mut() = head.status;
            Ok((resp, head.fields))
        }
    }
}

/// Write the request (head, then body) and read the response head,
/// skipping interim 1xx responses other than 101. `(chunked, expect)`:
/// the body goes chunked; the client asked `Expect: 100-continue`.
///
/// With `expect`, the head goes alone and the body is not read from the
/// client until the gateway says `100 Continue` (or has said nothing for
/// [`CONTINUE_WAIT`]): reading it is what makes hyper send the client
/// its `100 Continue`, so the client's 100 is the gateway's. A gateway
/// that refuses at once (403, 413) has its answer relayed, the body
/// never sent; hyper then closes the client's connection, its body unread.
async fn round_trip(
    conn: &mut Connection,
    method: &Method,
    body: &mut OutBody,
    (chunked, expect): (bool, bool),
    timeouts: Timeouts,
) -> Result<ResponseHead, Failure> {
    let next_frame = async |body: &mut OutBody| {
        tokio::time::timeout(timeouts.body_idle, body.frame())
            .await
            .map_err(|_| Failure::fatal(UpstreamError::ClientBodyTimeout))
    };
    // The first body frame rides with the head: one write for most requests.
    let mut body_done = body.is_end_stream();
    if !body_done && expect {
        write_buffered(conn, timeouts.response, true).await?;
        conn.write.clear();
        conn.arm(CONTINUE_WAIT.min(timeouts.response));
        let answer = await_continue(conn, method).await;
        if let Some(mut head) = answer? {
            // The gateway may still expect the body it refused.
            head.keep_alive = false;
            return Ok(head);
        }
    }
    if !body_done {
        match next_frame(body).await? {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    put_data(&mut conn.write, &data, chunked);
                }
            }
            Some(Err(e)) => return Err(Failure::fatal(classify_body(&*e))),
            None => body_done = true,
        }
        if !body_done && body.is_end_stream() {
            body_done = true;
        }
        if body_done && chunked {
            conn.write.extend_from_slice(b"0\r\n\r\n");
        }
    }
    // Nothing reached the gateway if this first write fails: replayable.
    write_buffered(conn, timeouts.response, true).await?;
    while !body_done {
        conn.write.clear();
        match next_frame(body).await? {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    put_data(&mut conn.write, &data, chunked);
                }
            }
            Some(Err(e)) => return Err(Failure::fatal(classify_body(&*e))),
            None => {
                body_done = true;
                if chunked {
                    conn.write.extend_from_slice(b"0\r\n\r\n");
                }
            }
        }
        if !conn.write.is_empty() {
            write_buffered(conn, timeouts.response, false).await?;
        }
    }
    conn.arm(timeouts.response);
    read_head(conn, method).await
}

/// Write `conn.write` to the gateway; one that stops taking bytes for
/// `limit` is a timeout, a failed write a reset (`replayable` as given).
async fn write_buffered(
    conn: &mut Connection,
    limit: Duration,
    replayable: bool,
) -> Result<(), Failure> {
    match conn.write_within(limit).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Failure {
            error: UpstreamError::Reset,
            replayable,
        }),
        Err(_) => Err(Failure::fatal(UpstreamError::ResponseTimeout)),
    }
}

/// After a head with `Expect: 100-continue`: `None` once the gateway
/// says `100 Continue` or the armed time passes (send the body), or its
/// final answer, given before any body byte.
async fn await_continue(
    conn: &mut Connection,
    method: &Method,
) -> Result<Option<ResponseHead>, Failure> {
    loop {
        match response_head::parse_response(&mut conn.read, method) {
            Ok(Some(head)) if head.status == StatusCode::CONTINUE => return Ok(None),
            // 103 Early Hints and the like: still waiting.
            Ok(Some(head))
                if head.status.is_informational() && head.framing != Framing::Upgrade => {}
            Ok(Some(head)) => return Ok(Some(head)),
            Ok(None) => match conn.read_more_or_expire().await {
                Err(Elapsed) => return Ok(None),
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Err(Failure::fatal(UpstreamError::Reset)),
            },
            Err(e) => {
                tracing::debug!("unusable response head from the gateway: {e:?}");
                return Err(Failure::fatal(UpstreamError::Reset));
            }
        }
    }
}

/// Read the response head, skipping interim 1xx responses other than 101,
/// until the armed time passes.
async fn read_head(conn: &mut Connection, method: &Method) -> Result<ResponseHead, Failure> {
    let mut answered = false;
    loop {
        match response_head::parse_response(&mut conn.read, method) {
            Ok(Some(head))
                if head.status.is_informational() && head.framing != Framing::Upgrade =>
            {
                // The final head may already be in the buffer behind it.
                answered = true;
                continue;
            }
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("unusable response head from the gateway: {e:?}");
                return Err(Failure::fatal(UpstreamError::Reset));
            }
        }
        answered |= !conn.read.is_empty();
        match conn.read_more_or_expire().await {
            Err(Elapsed) => return Err(Failure::fatal(UpstreamError::ResponseTimeout)),
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => {
                return Err(Failure {
                    error: UpstreamError::Reset,
                    replayable: !answered && method.is_idempotent(),
                })
            }
        }
    }
}

/// Append body bytes, as one chunk when the transfer coding is chunked.
fn put_data(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        return;
    }
    if chunked {
        use std::io::Write;
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}
