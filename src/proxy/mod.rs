//! The request path, top to bottom: request target checks → request ID →
//! client IP → public route or identify → policy → forward → log + metrics.
//!
//! [`serve`] is the outer layer (respond, log, count); [`handle`] is the
//! inner one and bails out with a [`Refusal`] via `?`. A request loads the
//! config snapshot once and uses that one to the end.

pub mod headers;
pub mod login;
pub mod relay;
pub mod tunnel;
pub mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;

use crate::access_log::{now_rfc3339, Record};
use crate::client_ip::{self, ClientIp};
use crate::config::Snapshot;
use crate::deny::{self, Reason};
use crate::identity::{self, IdentifyError, PeerCert, Via};
use crate::member::{MemberId, Mode};
use crate::metrics::{NO_MEMBER, NO_UPSTREAM};
use crate::origin::OriginDiff;
use crate::policy::{self, Diff};
use crate::request_id;
use crate::state::State;
use headers::{Caller, Forwarding};
use upstream::UpstreamError;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<upstream::ResponseBody, Full<Bytes>>;

/// Name of the browser session cookie (see `/_clawgate/login`).
pub const SESSION_COOKIE: &str = "clawgate_session";

/// One accepted client connection.
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
    pub cert: Option<PeerCert>,
    /// Holds one of the peer's unauthenticated-connection slots until the
    /// first identified request (see `limits`).
    unauthenticated: Arc<AtomicBool>,
    /// The peer address as an `x-forwarded-for` value, formatted once.
    peer_ip_header: HeaderValue,
    /// The last token that identified a request on this connection, so a
    /// keep-alive connection does not hash the same token on every request.
    /// Valid only for the snapshot generation it was made in.
    auth: std::sync::Mutex<Option<AuthCache>>,
}

struct AuthCache {
    generation: u64,
    token: Box<[u8]>,
    member: MemberId,
    token_id: String,
    expires: Option<SystemTime>,
}

impl Conn {
    pub fn new(
        peer: SocketAddr,
        tls: bool,
        cert: Option<PeerCert>,
        unauthenticated: Arc<AtomicBool>,
    ) -> Self {
        Conn {
            peer_ip_header: HeaderValue::from_str(&crate::cidr::canonical(peer.ip()).to_string())
                .expect("an IP address is a valid header value"),
            peer,
            tls,
            cert,
            unauthenticated,
            auth: std::sync::Mutex::new(None),
        }
    }

    /// The identity this exact token had on this connection, if the
    /// snapshot has not changed since and the token has not expired.
    fn cached_identity(
        &self,
        generation: u64,
        token: &[u8],
        now: SystemTime,
    ) -> Option<identity::Identity> {
        use subtle::ConstantTimeEq;
        let guard = self.auth.lock().ok()?;
        let c = guard.as_ref()?;
        if c.generation != generation
            || !bool::from(c.token.ct_eq(token))
            || c.expires.is_some_and(|e| now >= e)
        {
            return None;
        }
        Some(identity::Identity {
            member: c.member,
            via: Via::Token {
                token_id: c.token_id.clone(),
            },
        })
    }

    fn remember(
        &self,
        generation: u64,
        token: &[u8],
        member: MemberId,
        token_id: &str,
        expires: Option<SystemTime>,
    ) {
        if let Ok(mut guard) = self.auth.lock() {
            *guard = Some(AuthCache {
                generation,
                token: token.into(),
                member,
                token_id: token_id.to_string(),
                expires,
            });
        }
    }

    /// An identified request arrived: give the unauthenticated slot back.
    fn authenticated(&self, state: &State) {
        if self.unauthenticated.load(Ordering::Relaxed)
            && self.unauthenticated.swap(false, Ordering::AcqRel)
        {
            state.limiter.release_unauthenticated(self.peer.ip());
        }
    }
}

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
    diff: Option<Diff>,
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
    record(&state, &snap, &ex, resp.status(), bytes_out, started);
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
    let host = request_host(&req)?;
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
            ex.diff = Some(Diff {
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
            });
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
    let identified = match cached {
        Some(id) => Ok(id),
        None => snap.credentials.identify(&presented, now).inspect(|id| {
            if let (Via::Token { token_id }, Some(t)) = (&id.via, token) {
                let expires = snap.members[id.member]
                    .token(token_id)
                    .and_then(|r| r.expires);
                conn.remember(snap.generation, t, id.member, token_id, expires);
            }
        }),
    };
    let id = match identified {
        Ok(id) => id,
        Err(IdentifyError::NoCredentials) => session_identity(snap, &req, now)?,
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
        ex.diff = Some(policy::explain(member, origin, client.ip));
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

/// A browser's session cookie, checked against the current snapshot: the
/// member must still exist and the token it was minted from still be valid.
/// Without one, a browser asking for a page is sent to the login form.
fn session_identity(
    snap: &Snapshot,
    req: &Request<Incoming>,
    now: SystemTime,
) -> Result<identity::Identity, Refusal> {
    let Some(sess) = &snap.session else {
        return Err(Refusal::Denied(Reason::NoCredentials));
    };
    // A browser asking for a page gets the login form instead of a JSON 401,
    // also when its cookie went stale (token rotated, key changed).
    let refuse = |reason: Reason| {
        let wants_html = req.method() == Method::GET
            && req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"))
            && headers::upgrade_requested(req.headers()).is_none();
        if !wants_html {
            return Refusal::Denied(reason);
        }
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        Refusal::LoginRedirect(format!("{}?{q}", login::LOGIN_PATH))
    };
    let Some(value) = headers::cookie(req.headers(), SESSION_COOKIE) else {
        return Err(refuse(Reason::NoCredentials));
    };
    let claims =
        crate::session::verify(&sess.key, value, now).ok_or_else(|| refuse(Reason::BadToken))?;
    let (member, m) = snap
        .member_by_name(&claims.member)
        .ok_or_else(|| refuse(Reason::BadToken))?;
    if m.token(&claims.token_id).is_none() {
        return Err(refuse(Reason::BadToken));
    }
    if !snap.credentials.token_valid(member, &claims.token_id, now) {
        return Err(refuse(Reason::TokenExpired));
    }
    Ok(identity::Identity {
        member,
        via: Via::Session {
            token_id: claims.token_id,
        },
    })
}

/// The host the client addressed: HTTP/1 `Host` (exactly one), or the h2
/// `:authority`. Returned for `X-Forwarded-Host`.
fn request_host(req: &Request<Incoming>) -> Result<Option<HeaderValue>, Refusal> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(Refusal::BadRequest("duplicate_host"));
    }
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => {
            let authority = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let (Some(h), Some(a)) = (&first, &authority) {
                if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) {
                    return Err(Refusal::BadRequest("host_authority_mismatch"));
                }
            }
            Ok(authority.or(first))
        }
        Version::HTTP_11 if first.is_none() => Err(Refusal::BadRequest("missing_host")),
        _ => Ok(first),
    }
    .and_then(|host| match host {
        Some(h) if !valid_host(h.as_bytes()) => Err(Refusal::BadRequest("bad_host")),
        other => Ok(other),
    })
}

/// `host[:port]` (RFC 9110 §7.2): no userinfo, path or spaces, since it
/// travels on as `X-Forwarded-Host`.
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.iter().rposition(|b| *b == b':') {
        Some(i) if !v[i..].contains(&b']') => (&v[..i], Some(&v[i + 1..])),
        _ => (v, None),
    };
    let host_ok = match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        Some(ip) => {
            !ip.is_empty()
                && ip
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        }
        None => {
            !host.is_empty()
                && host
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b))
        }
    };
    host_ok && port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
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

    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Origin-form: the connection is already to the upstream's authority.
    parts.uri = Uri::from(pq);
    parts.version = Version::HTTP_11;
    let client = ex.client.expect("client ip resolved before forwarding");
    let client_ip = match client.source {
        client_ip::IpSource::Socket => conn.peer_ip_header.clone(),
        _ => HeaderValue::from_str(&client.ip.to_string())
            .map_err(|_| Refusal::BadRequest("bad_client_ip"))?,
    };
    headers::prepare_request(
        &mut parts.headers,
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
    );
    let out = Request::from_parts(parts, Limited::new(body, limit as usize));

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
    state
        .metrics
        .upstream_duration
        .with_label_values(&[&up.name])
        .observe(elapsed.as_secs_f64());
    let (mut resp, lease) = match result {
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
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
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
    headers::prepare_response(resp.headers_mut(), switching, &ex.request_id);
    let reset = state
        .metrics
        .upstream_errors
        .with_label_values(&[&up.name, UpstreamError::Reset.kind()]);
    let rid = ex.request_id.clone();
    // An upgraded connection is the tunnel's now; never back to the pool.
    let lease = (!switching).then_some(lease);
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
        let body = upstream::ResponseBody::new(b, reset, rid, lease);
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

/// Map a refusal to its response; the only place statuses are chosen.
fn respond(snap: &Snapshot, ex: &mut Exchange, refusal: Refusal) -> Response<Body> {
    let rid = ex.request_id.to_str().unwrap_or("-").to_string();
    let resp = match refusal {
        Refusal::Denied(reason) => {
            ex.decision = Decision::Deny;
            ex.reason = Some(reason);
            if reason.is_authentication() {
                deny::unauthorized(reason, &rid)
            } else {
                let member = member_label(snap, ex);
                match &ex.diff {
                    Some(diff) => deny::forbidden(reason, &rid, member, diff),
                    None => deny::error(StatusCode::FORBIDDEN, reason.code(), &rid),
                }
            }
        }
        Refusal::BadRequest(why) => {
            ex.decision = Decision::Error;
            deny::error(StatusCode::BAD_REQUEST, why, &rid)
        }
        Refusal::NotFound(why) => {
            ex.decision = Decision::Error;
            deny::error(StatusCode::NOT_FOUND, why, &rid)
        }
        Refusal::LoginRedirect(to) => {
            ex.decision = Decision::Deny;
            ex.reason = Some(Reason::NoCredentials);
            let mut r = Response::new(String::new());
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&crate::session::clear_cookie(SESSION_COOKIE)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Refusal::MethodNotAllowed => {
            ex.decision = Decision::Error;
            let mut r = deny::error(StatusCode::METHOD_NOT_ALLOWED, "connect_refused", &rid);
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
            r
        }
        Refusal::TooManyFailures(left) => {
            ex.decision = Decision::Error;
            let mut r = deny::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_auth_failures",
                &rid,
            );
            if let Ok(v) = HeaderValue::from_str(&left.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Refusal::PayloadTooLarge => {
            ex.decision = Decision::Error;
            deny::error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &rid)
        }
        Refusal::Upstream(e) => {
            ex.decision = Decision::Error;
            deny::error(e.status(), &format!("upstream_{}", e.kind()), &rid)
        }
    };
    resp.map(|s| Either::Right(Full::new(Bytes::from(s))))
}

/// Count and log one finished exchange (response headers sent).
fn record(
    state: &State,
    snap: &Snapshot,
    ex: &Exchange,
    status: StatusCode,
    bytes_out: Option<u64>,
    started: Instant,
) {
    let member = member_label(snap, ex);
    let upstream = ex
        .upstream
        .and_then(|u| snap.upstreams.get(u))
        .map(|u| u.name.as_str());
    let m = &state.metrics;
    m.requests
        .with_label_values(&[member, upstream.unwrap_or(NO_UPSTREAM), status.as_str()])
        .inc();
    match (ex.decision, ex.reason) {
        (Decision::Deny, Some(r)) => m.denials.with_label_values(&[member, r.code()]).inc(),
        (Decision::Audit, Some(r)) => m
            .audit_would_deny
            .with_label_values(&[member, r.code()])
            .inc(),
        _ => {}
    }
    if let (Some(cred), Some(_), Decision::Allow | Decision::Audit) =
        (&ex.credential, ex.member, ex.decision)
    {
        if cred.starts_with("tok_") {
            let secs = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            m.token_last_used
                .with_label_values(&[member, cred])
                .set(secs);
        }
    }
    let rid = ex.request_id.to_str().unwrap_or("-");
    let path = ex.path.as_ref().map(|p| p.path()).unwrap_or("-");
    if state.access_log.enabled() {
        let client_ip = ex
            .client
            .map(|c| c.ip.to_string())
            .unwrap_or_else(|| "-".into());
        let ip_source = ex
            .client
            .map(|c| c.source.describe())
            .unwrap_or_else(|| "-".into());
        state.access_log.write(&Record {
            ts: now_rfc3339(),
            kind: "http",
            request_id: rid,
            member,
            credential: ex.credential.as_deref(),
            client_ip,
            ip_source,
            method: ex.method.as_str(),
            path,
            status: status.as_u16(),
            decision: ex.decision.as_str(),
            reason: ex.reason.map(|r| r.code()),
            upstream,
            upstream_ms: ex.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            bytes_in: ex.bytes_in,
            bytes_out,
            diff: ex.diff.as_ref(),
        });
    } else if let Some(diff) = &ex.diff {
        // The diff is always logged, even with the access log off.
        tracing::info!(
            request_id = rid,
            member,
            path,
            decision = ex.decision.as_str(),
            reason = ex.reason.map(|r| r.code()).unwrap_or("-"),
            diff = %serde_json::to_string(diff).unwrap_or_default(),
            "policy denial"
        );
    }
}
