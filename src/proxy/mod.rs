//! The request path, top to bottom: request target checks → request ID →
//! client IP → public route or identify → policy → forward → log + metrics.
//!
//! [`serve`] is the outer layer (respond, log, count); [`handle`] is the
//! inner one and bails out with a [`Refusal`] via `?`. A request loads the
//! config snapshot once and uses that one to the end.

mod conn;
pub mod headers;
pub mod login;
mod outcome;
pub mod relay;
pub mod tunnel;
pub mod upstream;

pub use conn::Conn;
use outcome::{record, respond};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full, Limited};
use hyper::body::{Body as _, Incoming};

use crate::client_ip::{self, ClientIp};
use crate::config::Snapshot;
use crate::deny::Reason;
use crate::identity::{self, IdentifyError, Via};
use crate::member::{MemberId, Mode};
use crate::metrics::NO_MEMBER;
use crate::origin::OriginDiff;
use crate::policy::{self, Diff, Explained};
use crate::request_id;
use crate::state::State;
use headers::{Caller, Forwarding};
use upstream::UpstreamError;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<upstream::ResponseBody, Full<Bytes>>;

/// Name of the browser session cookie (see `/_clawgate/login`).
pub const SESSION_COOKIE: &str = "clawgate_session";

/// Why a request was not forwarded.
#[derive(Debug)]
pub enum Refusal {
    Denied(Reason),
    BadRequest(&'static str),
    NotFound(&'static str),
    /// A browser without a session: send it to the login page.
    LoginRedirect(String),
    MethodNotAllowed,
    PayloadTooLarge,
    /// Too many failed authentications from this address.
    TooManyFailures(Duration),
    Upstream(UpstreamError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Allow,
    Public,
    /// MODE=audit: enforce mode would have refused, it passed.
    Audit,
    Deny,
    Error,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Public => "public",
            Decision::Audit => "audit_would_deny",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }
}

/// What we learned about a request on its way through, for log and metrics.
struct Exchange {
    request_id: HeaderValue,
    method: Method,
    path: Option<PathAndQuery>,
    client: Option<ClientIp>,
    member: Option<MemberId>,
    credential: Option<String>,
    upstream: Option<usize>,
    upstream_elapsed: Option<Duration>,
    decision: Decision,
    reason: Option<Reason>,
    diff: Option<Arc<Explained>>,
    /// Declared request body length (`Content-Length`), when given.
    bytes_in: Option<u64>,
}

pub async fn serve(
    state: Arc<State>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let snap = state.snapshot();
    let mut ex = Exchange {
        request_id: HeaderValue::from_static("-"),
        method: req.method().clone(),
        path: req.uri().path_and_query().cloned(),
        client: None,
        member: None,
        credential: None,
        upstream: None,
        upstream_elapsed: None,
        decision: Decision::Allow,
        reason: None,
        diff: None,
        bytes_in: content_length(req.headers()),
    };
    let mut resp = match handle(&state, &snap, &conn, req, &mut ex).await {
        Ok(r) => r,
        Err(refusal) => respond(&snap, &mut ex, refusal),
    };
    resp.headers_mut()
        .insert(headers::X_REQUEST_ID, ex.request_id.clone());
    let bytes_out = content_length(resp.headers());
    record(&state, &snap, &conn, &ex, resp.status(), bytes_out, started);
    Ok(resp)
}

async fn handle(
    state: &Arc<State>,
    snap: &Snapshot,
    conn: &Conn,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<Body>, Refusal> {
    // Not an open proxy: origin-form (or h2 :path) only.
    if req.method() == Method::CONNECT {
        ex.request_id = request_id::generate();
        return Err(Refusal::MethodNotAllowed);
    }
    if req.version() < Version::HTTP_2 && req.uri().scheme().is_some() {
        ex.request_id = request_id::generate();
        return Err(Refusal::BadRequest("absolute_form"));
    }
    // Authority-form (`GET host:80`) and asterisk-form (`OPTIONS *`).
    if !req.uri().path().starts_with('/') {
        ex.request_id = request_id::generate();
        return Err(Refusal::BadRequest("bad_target"));
    }
    let client = client_ip::resolve(conn.peer, req.headers(), &snap.trusted_proxies);
    let client = match client {
        Ok(c) => c,
        Err(_) => {
            ex.request_id = request_id::generate();
            return Err(Refusal::BadRequest("bad_x_forwarded_for"));
        }
    };
    ex.client = Some(client);
    ex.request_id = request_id::assign(req.headers(), client.peer_trusted);
    let host = headers::request_host(&req)?;
    if req
        .headers()
        .get_all(header::ORIGIN)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(Refusal::BadRequest("duplicate_origin"));
    }

    if login::is_session_path(req.uri().path()) {
        return login::handle(snap, req, ex).await;
    }

    // Public routes: no member, CIDR check only, the caller's own
    // credentials travel on.
    if let Some(route) = snap.public_route(req.uri().path()) {
        if !route.sources.contains(client.ip) {
            ex.diff = Some(Arc::new(Explained::new(Diff {
                origin: OriginDiff {
                    presented: req
                        .headers()
                        .get(header::ORIGIN)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    allowed: Vec::new(),
                    nearest: None,
                    hint: format!("public route {}: origin not checked", route.path_prefix),
                },
                client_ip: policy::ip_diff(route.sources.nets(), client.ip),
            })));
            return Err(Refusal::Denied(Reason::CidrNotAllowed));
        }
        ex.decision = Decision::Public;
        let route_upstream = route.upstream;
        return forward(
            state,
            snap,
            conn,
            req,
            ex,
            Caller::Public {
                prefix: &route.path_prefix,
            },
            route_upstream,
            host,
        )
        .await;
    }

    // Identify.
    let h = req.headers();
    let presented = identity::Presented {
        cert: conn.cert.as_ref(),
        bearer: h
            .get(header::AUTHORIZATION)
            .and_then(|v| identity::bearer(v.as_bytes())),
        header_token: h
            .get(headers::X_CLAWGATE_TOKEN)
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|t| !t.is_empty()),
    };
    let now = SystemTime::now();
    let token = presented.bearer.or(presented.header_token);
    let cached = match (conn.cert.is_none(), token) {
        (true, Some(t)) => conn.cached_identity(snap.generation, t, now),
        _ => None,
    };
    let certless_token = token.filter(|_| conn.cert.is_none());
    let identified = match cached {
        Some(id) => Ok(id),
        None if certless_token.is_some_and(|t| conn.known_bad(snap.generation, t)) => {
            Err(IdentifyError::BadToken)
        }
        None => snap
            .credentials
            .identify(&presented, now)
            .inspect(|id| {
                if let (Via::Token { token_id }, Some(t)) = (&id.via, token) {
                    let expires = snap.members[id.member]
                        .token(token_id)
                        .and_then(|r| r.expires);
                    conn.remember(snap.generation, t, id.member, token_id, expires);
                }
            })
            .inspect_err(|e| {
                if let (IdentifyError::BadToken, Some(t)) = (e, certless_token) {
                    conn.remember_bad(snap.generation, t);
                }
            }),
    };
    let id = match identified {
        Ok(id) => id,
        Err(IdentifyError::NoCredentials) => login::session_identity(snap, &req, now)?,
        Err(e) => {
            let limits = &snap.limits.per_ip;
            if let Some(left) = state.limiter.failed(client.ip, limits) {
                return Err(Refusal::TooManyFailures(left));
            }
            return Err(Refusal::Denied(match e {
                IdentifyError::NoCredentials => Reason::NoCredentials,
                IdentifyError::BadToken => Reason::BadToken,
                IdentifyError::UnknownCert => Reason::UnknownCert,
                IdentifyError::TokenExpired { member, token_id } => {
                    ex.member = Some(member);
                    ex.credential = Some(token_id);
                    Reason::TokenExpired
                }
            }));
        }
    };
    conn.authenticated(state);
    ex.member = Some(id.member);
    ex.credential = Some(id.via.credential_id().to_string());
    let member = &snap.members[id.member];

    // Policy.
    let origin = req.headers().get(header::ORIGIN).map(|v| v.as_bytes());
    if let Err(reason) = policy::evaluate(member, origin, client.ip) {
        ex.diff = Some(
            conn.explained(snap.generation, id.member, origin, client.ip, || {
                policy::explain(member, origin, client.ip)
            }),
        );
        let origin_text = origin.map(String::from_utf8_lossy);
        state
            .suggest
            .record(&member.name, origin_text.as_deref(), client.ip);
        ex.reason = Some(reason);
        match member.mode {
            Mode::Enforce => return Err(Refusal::Denied(reason)),
            Mode::Audit => ex.decision = Decision::Audit,
        }
    }

    forward(
        state,
        snap,
        conn,
        req,
        ex,
        Caller::Member {
            member,
            via: &id.via,
        },
        member.upstream,
        host,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &Arc<State>,
    snap: &Snapshot,
    conn: &Conn,
    mut req: Request<Incoming>,
    ex: &mut Exchange,
    caller: Caller<'_>,
    upstream_idx: usize,
    host: Option<HeaderValue>,
) -> Result<Response<Body>, Refusal> {
    let up = &snap.upstreams[upstream_idx];
    ex.upstream = Some(upstream_idx);
    let limit = snap.limits.max_body_bytes;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > limit => return Err(Refusal::PayloadTooLarge),
            Some(_) => {}
            None => return Err(Refusal::BadRequest("bad_content_length")),
        }
    }
    // Only WebSocket is tunnelled. Any other Upgrade (h2c) is ignored, as
    // RFC 9110 §7.8 allows: the gateway must never switch to a protocol
    // whose requests would bypass clawgate.
    let upgrade = if req.version() == Version::HTTP_11 {
        headers::upgrade_requested(req.headers())
            .filter(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"))
    } else {
        None
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    // Kept for the grant of a tunnel or event stream (a cheap clone).
    let origin = req.headers().get(header::ORIGIN).cloned();

    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let client = ex.client.expect("client ip resolved before forwarding");
    let client_ip = match client.source {
        client_ip::IpSource::Socket => conn.peer_ip_header.clone(),
        _ => HeaderValue::from_str(&client.ip.to_string())
            .map_err(|_| Refusal::BadRequest("bad_client_ip"))?,
    };
    let body = Limited::new(body, limit as usize);
    // A body of unknown length (HTTP/1.1 chunked, or h2 without
    // content-length) goes to the gateway chunked.
    let chunked = !body.is_end_stream() && !parts.headers.contains_key(header::CONTENT_LENGTH);
    let mut head = Vec::with_capacity(1024);
    headers::write_request_head(
        &mut head,
        &parts.method,
        target,
        &parts.headers,
        up,
        &caller,
        &Forwarding {
            client_ip,
            proto: HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
            host,
            request_id: &ex.request_id,
            peer_trusted: client.peer_trusted,
            upgrade: upgrade.clone(),
            session_cookie: SESSION_COOKIE,
        },
        chunked,
    );
    let out = upstream::Outgoing {
        method: &parts.method,
        head: &head,
        body,
        chunked,
    };

    let t0 = Instant::now();
    let result = state
        .upstream
        .send(
            &up.authority,
            out,
            snap.timeouts.upstream_connect,
            snap.timeouts.upstream_response,
        )
        .await;
    let elapsed = t0.elapsed();
    ex.upstream_elapsed = Some(elapsed);
    let (duration, reset) = {
        let mut handles = conn.handles.lock().unwrap_or_else(|e| e.into_inner());
        conn::cached(
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
        )
    };
    duration.observe(elapsed.as_secs_f64());
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if e.is_upstream_fault() {
                state
                    .metrics
                    .upstream_errors
                    .with_label_values(&[&up.name, e.kind()])
                    .inc();
            }
            // The client's body outgrew the limit while streaming: the same
            // refusal (and reason code) as an oversized Content-Length.
            if e == UpstreamError::BodyTooLarge {
                return Err(Refusal::PayloadTooLarge);
            }
            // The client's body broke (bad chunk, cut short): its fault.
            if e == UpstreamError::ClientBody {
                return Err(Refusal::BadRequest("bad_request_body"));
            }
            return Err(Refusal::Upstream(e));
        }
    };
    state.mark_upstream_seen();

    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let Some(client_upgrade) = client_upgrade else {
            state
                .metrics
                .upstream_errors
                .with_label_values(&[&up.name, "unrequested_upgrade"])
                .inc();
            return Err(Refusal::Upstream(UpstreamError::Reset));
        };
        let Some(upstream_upgrade) = resp.body_mut().take_upgraded() else {
            return Err(Refusal::Upstream(UpstreamError::Reset));
        };
        let info = tunnel::LogInfo {
            request_id: ex.request_id.to_str().unwrap_or("-").to_string(),
            member: member_label(snap, ex).to_string(),
            credential: ex.credential.clone(),
            client_ip: client.ip.to_string(),
            ip_source: client.source.describe(),
            path: ex
                .path
                .as_ref()
                .map(|p| p.path().to_string())
                .unwrap_or_default(),
            upstream: up.name.clone(),
            websocket: upgrade
                .as_ref()
                .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket")),
        };
        let origin = origin.as_ref().map(|o| o.as_bytes().to_vec());
        let grant = tunnel::Grant::new(&caller, conn.cert.clone(), origin, client.ip);
        tunnel::spawn(state.clone(), client_upgrade, upstream_upgrade, grant, info);
    }
    headers::prepare_response(resp.headers_mut(), switching);
    let rid = ex.request_id.clone();
    let event_stream = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let watch = event_stream.then(|| {
        let origin = origin.as_ref().map(|o| o.as_bytes().to_vec());
        let grant = tunnel::Grant::new(&caller, conn.cert.clone(), origin, client.ip);
        tunnel::StreamWatch::register(state, grant, rid.clone())
    });
    Ok(resp.map(|b| {
        let body = upstream::ResponseBody::new(b, reset, rid);
        Either::Left(match watch {
            Some(w) => body.watched(w),
            None => body,
        })
    }))
}

/// A message's declared body length; streamed bodies have none.
fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn member_label<'s>(snap: &'s Snapshot, ex: &Exchange) -> &'s str {
    ex.member
        .and_then(|m| snap.members.get(m))
        .map(|m| m.name.as_str())
        .unwrap_or(NO_MEMBER)
}
