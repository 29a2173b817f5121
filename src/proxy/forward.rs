//! Forwarding an admitted request to its upstream: the upstream head,
//! the exchange, and what the response becomes on its way back (a
//! WebSocket tunnel, a watched event stream, or a plain body).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode, Version};
use http_body_util::{Either, Limited};
use hyper::body::Body as _;
use hyper::upgrade::OnUpgrade;
use prometheus::IntCounter;

use super::h2_websocket;
use super::headers::{self, Caller, Forwarding};
use super::upstream::{self, UpstreamBody, UpstreamError};
use super::{
    conn, member_label, tunnel, Body, ClientRequest, Conn, Exchange, Fields, HeadFields, Refusal,
    ResponseBody, SESSION_COOKIE,
};
use crate::client_ip::{self, ClientIp};
use crate::config::{Snapshot, Upstream};
use crate::state::State;

/// Send an admitted request to its upstream, and make the answer the
/// client's response: a WebSocket tunnel, a watched event stream or a
/// plain body.
///
/// An async block, not an `async fn`: an `async fn`'s future keeps its
/// arguments twice (as captured, then as locals), and the request (240
/// bytes) is moved with every future that holds this one, once a request.
#[allow(clippy::too_many_arguments, clippy::manual_async_fn)]
pub(super) fn forward<'a>(
    state: &'a Arc<State>,
    snap: &'a Snapshot,
    conn: &'a Conn,
    mut req: ClientRequest,
    ex: &'a mut Exchange,
    caller: Caller<'a>,
    upstream_idx: usize,
    host: Option<Bytes>,
) -> impl Future<Output = Result<Response<Body>, Refusal>> + 'a {
    async move {
        let up = &snap.upstreams[upstream_idx];
        ex.upstream = Some(upstream_idx);
        let limit = snap.limits.max_body_bytes;
        let content_length = req.fields.get("content-length");
        check_length(content_length, limit)?;
        let upgrade = websocket_upgrade(&req.fields, req.version, req.h2_websocket);
        // RFC 8441 has no key exchange (the stream is the proof); the
        // gateway's RFC 6455 handshake needs one, and its answer is checked.
        let h2_key = req.h2_websocket.then(h2_websocket::Key::new);
        // Each tunnel counts as an open connection (`tunnel::spawn`); an h2
        // connection could otherwise open 256 of them past the limit.
        if req.h2_websocket
            && state.metrics.connections_open.get() >= snap.limits.max_connections as i64
        {
            return Err(Refusal::TooManyConnections);
        }
        if upgrade.is_none() {
            req.upgrade = None;
        }
        let client = ex.client.expect("client ip resolved before forwarding");
        let client_ip = client_ip_header(conn, client)?;
        // A body of unknown length (HTTP/1.1 chunked, or h2 without
        // content-length) goes to the gateway chunked.
        let chunked = !req.body.is_end_stream() && content_length.is_none();
        let expect_continue = expects_continue(&req);
        let forwarding = Forwarding {
            client_ip,
            proto: HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
            host: host.as_deref(),
            request_id: &ex.request_id,
            peer_trusted: client.peer_trusted,
            upgrade,
            websocket_key: h2_key.as_ref().map(h2_websocket::Key::as_bytes),
            session_cookie: SESSION_COOKIE,
        };
        let mut head = head_buffer::take();
        // The gateway gets an RFC 8441 stream as the RFC 6455 `GET` it is.
        let method = if req.h2_websocket {
            &http::Method::GET
        } else {
            &req.method
        };
        write_head(&mut head, method, &req, up, &caller, &forwarding, chunked);
        let out = upstream::Outgoing {
            method,
            head: &head,
            body: Limited::new(req.body, limit as usize),
            chunked,
            expect_continue,
        };

        let t0 = Instant::now();
        let result = state
            .upstream
            .send(&up.authority, caller.member_name(), out, timeouts(snap))
            .await;
        head_buffer::give_back(head);
        let reset = timed(state, snap, conn, ex, upstream_idx, t0.elapsed());
        let (resp, gateway) = result.map_err(|e| failed(state, up, ex, e))?;
        state.mark_upstream_seen();
        state.upstream.health.success(&up.name);

        let asked = Asked {
            upgrade: req.upgrade,
            h2_key,
            h2: req.h2_websocket,
            origin: req.fields.get("origin"),
            client,
        };
        answer(
            state, snap, conn, ex, &caller, up, asked, resp, gateway, reset,
        )
    }
}

/// The request head for the gateway, written into `head`.
fn write_head(
    head: &mut Vec<u8>,
    method: &http::Method,
    req: &ClientRequest,
    up: &Upstream,
    caller: &Caller<'_>,
    forwarding: &Forwarding<'_>,
    chunked: bool,
) {
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    headers::write_request_head(
        head,
        method,
        target,
        &req.fields,
        up,
        caller,
        forwarding,
        chunked,
    );
}

/// Looked up only for a request with a body: a bodiless one (every
/// request the lean loop reads) has nothing to wait for.
fn expects_continue(req: &ClientRequest) -> bool {
    !req.body.is_end_stream()
        && req
            .fields
            .get("expect")
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
}

/// What the answer needs of the request once the gateway has answered.
struct Asked<'r> {
    upgrade: Option<OnUpgrade>,
    h2_key: Option<h2_websocket::Key>,
    h2: bool,
    /// Kept for the grant of a tunnel or event stream.
    origin: Option<&'r [u8]>,
    client: ClientIp,
}

/// The gateway's answer as the client's response: a 101 becomes a
/// tunnel, an event stream is watched, any other body streams through.
#[allow(clippy::too_many_arguments)]
fn answer(
    state: &Arc<State>,
    snap: &Snapshot,
    conn: &Conn,
    ex: &Exchange,
    caller: &Caller<'_>,
    up: &Upstream,
    asked: Asked<'_>,
    mut resp: Response<UpstreamBody>,
    mut gateway: HeadFields,
    reset: IntCounter,
) -> Result<Response<Body>, Refusal> {
    let grant = || {
        tunnel::grant(
            caller,
            conn.cert.clone(),
            asked.origin.map(<[u8]>::to_vec),
            asked.client.ip,
        )
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (client_side, gateway_side) = switch(
            state,
            up,
            asked.upgrade,
            asked.h2_key.as_ref(),
            &mut resp,
            &mut gateway,
        )?;
        let info = log_info(snap, ex, asked.client, up, asked.h2);
        tunnel::spawn(state.clone(), client_side, gateway_side, grant(), info);
    }
    let rid = ex.request_id.clone();
    let watch = gateway
        .event_stream
        .then(|| tunnel::StreamWatch::register(state, grant(), rid.clone()));
    Ok(resp.map(|b| {
        let body = ResponseBody::new(b, gateway, reset, rid);
        Either::Left(match watch {
            Some(w) => body.watched(w),
            None => body,
        })
    }))
}

/// The WebSocket's line in the log when its tunnel closes.
fn log_info(
    snap: &Snapshot,
    ex: &Exchange,
    client: ClientIp,
    up: &Upstream,
    h2: bool,
) -> tunnel::LogInfo {
    tunnel::LogInfo {
        request_id: ex.request_id.to_string(),
        member: member_label(snap, ex).to_string(),
        credential: ex.credential.clone(),
        client_ip: client.ip,
        ip_source: client.source,
        path: ex
            .path
            .as_ref()
            .map(|p| p.path().to_string())
            .unwrap_or_default(),
        upstream: up.name.clone(),
        websocket: true,
        h2,
    }
}

fn timeouts(snap: &Snapshot) -> upstream::Timeouts {
    upstream::Timeouts {
        connect: snap.timeouts.upstream_connect,
        response: snap.timeouts.upstream_response,
        body_idle: snap.timeouts.header_read,
    }
}

/// A declared body over the limit is refused before anything is sent.
fn check_length(content_length: Option<&[u8]>, limit: u64) -> Result<(), Refusal> {
    let Some(len) = content_length else {
        return Ok(());
    };
    match crate::message::fields::text(len).and_then(|s| s.parse::<u64>().ok()) {
        Some(n) if n > limit => Err(Refusal::PayloadTooLarge),
        Some(_) => Ok(()),
        None => Err(Refusal::BadRequest("bad_content_length")),
    }
}

/// The upgrade to ask the gateway for. Only WebSocket is tunnelled: any
/// other Upgrade (h2c) is ignored, as RFC 9110 §7.8 allows, since the
/// gateway must never switch to a protocol whose requests would bypass
/// clawgate.
fn websocket_upgrade(fields: &Fields, version: Version, h2_websocket: bool) -> Option<&[u8]> {
    if version == Version::HTTP_11 {
        headers::upgrade_requested(fields).filter(|u| u.eq_ignore_ascii_case(b"websocket"))
    } else if h2_websocket {
        Some(&b"websocket"[..])
    } else {
        None
    }
}

/// The client's address as the gateway's `X-Forwarded-For` names it.
fn client_ip_header(conn: &Conn, client: ClientIp) -> Result<HeaderValue, Refusal> {
    match client.source {
        client_ip::IpSource::Socket => Ok(conn.peer_ip_header.clone()),
        _ => HeaderValue::from_str(&client.ip.to_string())
            .map_err(|_| Refusal::BadRequest("bad_client_ip")),
    }
}

/// The gateway's time to answer, observed; returns the counter the body
/// bumps if the gateway resets it mid-way (long after this lock).
fn timed(
    state: &State,
    snap: &Snapshot,
    conn: &Conn,
    ex: &mut Exchange,
    upstream_idx: usize,
    elapsed: Duration,
) -> IntCounter {
    ex.upstream_elapsed = Some(elapsed);
    let up = &snap.upstreams[upstream_idx];
    let mut handles = conn.handles.lock().unwrap_or_else(|e| e.into_inner());
    let (duration, reset) = conn::cached(
        &mut handles.upstream,
        (snap.generation, upstream_idx),
        || {
            let m = &state.metrics;
            (
                m.upstream_duration.with_label_values(&[&up.name]),
                m.upstream_errors
                    .with_label_values(&[&up.name, UpstreamError::Reset.kind()]),
            )
        },
    );
    duration.observe(elapsed.as_secs_f64());
    reset.clone()
}

/// The refusal for an exchange that failed; the gateway's own faults are
/// counted and feed its health.
fn failed(state: &State, up: &Upstream, ex: &Exchange, e: UpstreamError) -> Refusal {
    if e.is_upstream_fault() {
        state
            .metrics
            .upstream_errors
            .with_label_values(&[&up.name, e.kind()])
            .inc();
        let rid = ex.request_id.as_str();
        state
            .upstream
            .health
            .failure(&up.name, up.authority.as_str(), e, rid);
    }
    match e {
        // The client's body outgrew the limit while streaming: the same
        // refusal (and reason code) as an oversized Content-Length.
        UpstreamError::BodyTooLarge => Refusal::PayloadTooLarge,
        // The client's body broke (bad chunk, cut short): its fault.
        UpstreamError::ClientBody => Refusal::BadRequest("bad_request_body"),
        UpstreamError::ClientBodyTimeout => Refusal::BodyTimeout,
        e => Refusal::Upstream(e),
    }
}

/// A 101 from the gateway: both sides' upgraded connections, once the
/// answer is one the client asked for. A 101 the client cannot take is the
/// gateway's fault: counted by its kind, answered as a reset.
fn switch(
    state: &State,
    up: &Upstream,
    client_upgrade: Option<OnUpgrade>,
    h2_key: Option<&h2_websocket::Key>,
    resp: &mut Response<UpstreamBody>,
    gateway: &mut HeadFields,
) -> Result<(OnUpgrade, upstream::Upgraded), Refusal> {
    let bad_switch = |kind: &str| {
        state
            .metrics
            .upstream_errors
            .with_label_values(&[&up.name, kind])
            .inc();
        Refusal::Upstream(UpstreamError::Reset)
    };
    let Some(client_upgrade) = client_upgrade else {
        return Err(bad_switch("unrequested_upgrade"));
    };
    if let Some(key) = h2_key {
        // A 101 without the right accept is not the gateway's WebSocket;
        // over h2 the stream opens with a 200.
        if !key.accepted_by(gateway) {
            return Err(bad_switch("bad_websocket_accept"));
        }
        h2_websocket::to_stream_response(gateway);
        *resp.status_mut() = StatusCode::OK;
    }
    let Some(upstream_upgrade) = resp.body_mut().take_upgraded() else {
        return Err(Refusal::Upstream(UpstreamError::Reset));
    };
    Ok((client_upgrade, upstream_upgrade))
}

/// The request head is laid out before the gateway connection is known
/// (and written to each one tried), so it needs a buffer of its own, held
/// until the gateway answers. Buffers are kept per thread for the next
/// requests: a thread has as many exchanges in flight as it has busy
/// connections, and with one spare buffer all but one of them allocated
/// (and grew) their own.
mod head_buffer {
    use crate::spare::{self, Spares};

    /// Larger heads are rare: their buffer is not kept.
    const KEEP_UP_TO: usize = 16 * 1024;

    thread_local! {
        static SPARE: Spares<Vec<u8>> = const { Spares::new(256) };
    }

    pub fn take() -> Vec<u8> {
        spare::take(&SPARE).unwrap_or_else(|| Vec::with_capacity(1024))
    }

    pub fn give_back(mut buf: Vec<u8>) {
        if buf.capacity() <= KEEP_UP_TO {
            buf.clear();
            spare::give_back(&SPARE, buf);
        }
    }
}
