//! The request path, top to bottom: request target checks → request ID →
//! client IP → public route or identify → policy → forward → log + metrics.
//!
//! [`serve`] is the outer layer (respond, log, count); [`handle`] is the
//! inner one and bails out with a [`Refusal`] via `?`. A request loads the
//! config snapshot once and uses that one to the end.

mod conn;
pub mod cookie;
pub mod fields;
mod forward;
mod h2_websocket;
mod head_fields;
pub mod headers;
pub mod local_body;
pub mod login;
mod outcome;
pub mod request;
mod request_body;
pub mod tunnel;
pub mod upstream;

pub use conn::{Conn, CANCELS_TOLERATED};
pub use fields::Fields;
pub use head_fields::HeadFields;
pub use local_body::LocalBody;
use outcome::{record, respond};
pub use request::ClientRequest;
pub use request_body::RequestBody;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header;
use http::uri::PathAndQuery;
use http::{Method, Response, Version};
use http_body_util::Either;

use crate::client_ip::{self, ClientIp};
use crate::config::Snapshot;
use crate::deny_page;
use crate::metrics::NO_MEMBER;
use crate::request_id::{self, Clock, RequestId};
use crate::state::State;
use clawgate_policy::authorize::{self, Diff, Explained};
use clawgate_policy::identity::{self, CredentialId, IdentifyError, Identity, Via};
use clawgate_policy::member::{MemberId, Mode};
use clawgate_policy::origin::OriginDiff;
use clawgate_policy::Reason;
use forward::forward;
use headers::Caller;
use upstream::UpstreamError;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<upstream::ResponseBody, LocalBody>;

/// The header fields a response carries prewritten with its body (the
/// gateway's, or a JSON answer's fixed ones), if any.
pub fn head_fields(body: &mut Body) -> Option<&mut HeadFields> {
    match body {
        Either::Left(b) => b.fields_mut(),
        Either::Right(b) => b.fields_mut(),
    }
}

/// [`head_fields`], taken out for the head's writer.
pub fn take_head_fields(body: &mut Body) -> Option<HeadFields> {
    match body {
        Either::Left(b) => b.take_fields(),
        Either::Right(b) => b.take_fields(),
    }
}

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
    /// The client stopped sending its body for `header_read`.
    BodyTimeout,
    /// Too many failed authentications from this address.
    TooManyFailures(Duration),
    /// `[limits] max_connections` reached by a WebSocket opened as an h2
    /// stream, which the accept loop's count cannot stop (the connection
    /// is already open).
    TooManyConnections,
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
    request_id: RequestId,
    method: Method,
    path: Option<PathAndQuery>,
    client: Option<ClientIp>,
    member: Option<MemberId>,
    credential: Option<CredentialId>,
    upstream: Option<usize>,
    upstream_elapsed: Option<Duration>,
    decision: Decision,
    reason: Option<Reason>,
    /// The reason code of a refusal that is not a policy decision (400s,
    /// 413, 502…): the access log's `reason` then.
    error: Option<&'static str>,
    /// The gateway failed this exchange: the log names the address tried.
    upstream_failed: bool,
    diff: Option<Arc<Explained>>,
    /// Declared request body length (`Content-Length`), when given.
    bytes_in: Option<u64>,
    /// The wall clock when the request arrived.
    clock: Clock,
    /// When it arrived, for the access log's duration (read only when
    /// the access log is on).
    started: Option<Instant>,
}

/// Answer one request: decide, forward or refuse, then log and count it.
///
/// Borrows the state and connection (the callers hold them for the
/// connection's life): a clone and drop of each per request would be four
/// atomic operations.
///
/// An async block, not an `async fn`, for the reason given at
/// `forward`'s.
#[allow(clippy::manual_async_fn)]
pub fn serve<'a>(
    state: &'a Arc<State>,
    conn: &'a Arc<Conn>,
    mut req: ClientRequest,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + 'a {
    async move {
        // Dropped unanswered if the client cancels the request (h2 reset).
        let mut ended = Ended {
            conn,
            answered: false,
        };
        let snap = state.snapshot();
        let mut ex = Exchange {
            request_id: RequestId::UNSET,
            method: req.method.clone(),
            path: req.uri.path_and_query().cloned(),
            client: None,
            member: None,
            credential: None,
            upstream: None,
            upstream_elapsed: None,
            decision: Decision::Allow,
            reason: None,
            error: None,
            upstream_failed: false,
            diff: None,
            bytes_in: req
                .fields
                .get_str("content-length")
                .and_then(|v| v.parse().ok()),
            clock: Clock::now(),
            started: state.access_log.enabled().then(Instant::now),
        };
        // Decided on and forwarded decoded; logged as sent (see `target`).
        if let Some(uri) = clawgate_policy::target::decode_unreserved(&req.uri) {
            req.uri = uri;
        }
        // The decision is synchronous and the one await is here, not a layer
        // down: every async layer moves its callee's whole future into its
        // own, once a request, so an async `handle` between this and
        // `forward` would add a copy of a large future to every request.
        let answered = match decide(state, &snap, conn, &req, &mut ex) {
            Err(refusal) if login::is_page(req.path()) => {
                let mut resp = respond(&snap, &mut ex, refusal, false);
                login::add_page_fields(&mut resp);
                Ok(resp)
            }
            // A page load is refused with a page (see `deny_page`).
            Err(refusal) => Err((refusal, deny_page::wants_html(req.fields.get("accept")))),
            Ok(Next::Login) => Ok(login::handle(state, &snap, req, &mut ex).await),
            Ok(Next::Forward { to, host }) => {
                let (caller, upstream) = to.caller(&snap);
                forward(state, &snap, conn, req, &mut ex, caller, upstream, host)
                    .await
                    .map_err(|r| (r, false))
            }
        };
        let mut resp = match answered {
            Ok(r) => r,
            Err((refusal, html)) => respond(&snap, &mut ex, refusal, html),
        };
        // With the prewritten fields where there are some: a `HeaderMap`
        // allocated for this one field would cost more than the rest of them.
        match head_fields(resp.body_mut()) {
            Some(f) => f.request_id = Some(ex.request_id.clone()),
            None => {
                resp.headers_mut()
                    .insert(headers::X_REQUEST_ID, ex.request_id.to_header_value());
            }
        }
        let bytes_out = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| head_fields(resp.body_mut()).and_then(|f| f.content_length));
        record(state, &snap, conn, &ex, resp.status(), bytes_out);
        ended.answered = true;
        Ok(resp)
    }
}

/// Tells the connection how a request ended (see [`Conn::request_ended`]).
struct Ended<'a> {
    conn: &'a Conn,
    answered: bool,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.conn.request_ended(self.answered);
    }
}

/// Where an admitted request goes next (see [`decide`]).
enum Next<'s> {
    /// `/_clawgate/login` and its session paths.
    Login,
    /// To an upstream, with the host the client addressed.
    Forward { to: Target<'s>, host: Option<Bytes> },
}

/// Who a forwarded request is sent on for.
enum Target<'s> {
    /// A `[[public]]` route.
    Public { prefix: &'s str, upstream: usize },
    /// An identified member whose policy admits the request.
    Member(Identity),
}

impl<'s> Target<'s> {
    /// The caller as the upstream head names it, and the upstream.
    fn caller<'a>(&'a self, snap: &'s Snapshot) -> (Caller<'a>, usize)
    where
        's: 'a,
    {
        match self {
            Target::Public { prefix, upstream } => (Caller::Public { prefix }, *upstream),
            Target::Member(id) => {
                let member = &snap.members[id.member];
                let caller = Caller::Member {
                    member,
                    via: &id.via,
                };
                (caller, member.upstream)
            }
        }
    }
}

/// Everything about a request that is decided before it is sent on:
/// its form, client address, request ID, host, identity and policy.
fn decide<'s>(
    state: &Arc<State>,
    snap: &'s Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    ex: &mut Exchange,
) -> Result<Next<'s>, Refusal> {
    // Not an open proxy: origin-form (or h2 :path) only. The one CONNECT
    // taken is RFC 8441's WebSocket over an h2 stream, which names a path
    // on this proxy, not a host to tunnel to.
    if req.method == Method::CONNECT && !req.h2_websocket {
        ex.request_id = request_id::generate_at(ex.clock.since_epoch);
        return Err(Refusal::MethodNotAllowed);
    }
    if req.version < Version::HTTP_2 && req.uri.scheme().is_some() {
        ex.request_id = request_id::generate_at(ex.clock.since_epoch);
        return Err(Refusal::BadRequest("absolute_form"));
    }
    // Authority-form (`GET host:80`) and asterisk-form (`OPTIONS *`).
    if !req.path().starts_with('/') {
        ex.request_id = request_id::generate_at(ex.clock.since_epoch);
        return Err(Refusal::BadRequest("bad_target"));
    }
    // A path the gateway would resolve elsewhere than a prefix match sees.
    if let Err(why) = clawgate_policy::target::check(req.path()) {
        ex.request_id = request_id::generate_at(ex.clock.since_epoch);
        return Err(Refusal::BadRequest(why));
    }
    let client = client_ip::resolve(
        conn.peer,
        req.fields.get_all("x-forwarded-for"),
        &snap.trusted_proxies,
    );
    let client = match client {
        Ok(c) => c,
        Err(_) => {
            ex.request_id = request_id::generate_at(ex.clock.since_epoch);
            return Err(Refusal::BadRequest("bad_x_forwarded_for"));
        }
    };
    ex.client = Some(client);
    ex.request_id = request_id::assign(
        req.fields.get("x-request-id"),
        client.peer_trusted,
        ex.clock.since_epoch,
    );
    let host = headers::request_host(req)?;
    if req.fields.repeated("origin") {
        return Err(Refusal::BadRequest("duplicate_origin"));
    }

    if login::is_session_path(req.path()) {
        return Ok(Next::Login);
    }

    // Public routes: no member, CIDR check only, the caller's own
    // credentials travel on.
    if let Some(route) = snap.public_route(req.path()) {
        if !route.sources.contains(client.ip) {
            ex.diff = Some(Arc::new(Explained::new(Diff {
                origin: OriginDiff {
                    presented: req
                        .fields
                        .get("origin")
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                    allowed: Vec::new(),
                    nearest: None,
                    hint: format!("public route {}: origin not checked", route.path_prefix),
                },
                client_ip: authorize::ip_diff(route.sources.nets(), client.ip),
            })));
            return Err(Refusal::Denied(Reason::CidrNotAllowed));
        }
        ex.decision = Decision::Public;
        return Ok(Next::Forward {
            to: Target::Public {
                prefix: &route.path_prefix,
                upstream: route.upstream,
            },
            host,
        });
    }

    // Identify.
    let h = &req.fields;
    let presented = identity::Presented {
        cert: conn.cert.as_ref(),
        bearer: h.get("authorization").and_then(identity::bearer),
        header_token: h
            .get("x-clawgate-token")
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty()),
    };
    let now = ex.clock.now;
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
        Err(IdentifyError::NoCredentials) => login::session_identity(snap, req, now)?,
        Err(e) => {
            let limits = &snap.limits.per_ip;
            if let Some(left) = state.limiter.failed(client.ip, limits) {
                return Err(Refusal::TooManyFailures(left));
            }
            let reason = e.reason();
            if let IdentifyError::TokenExpired { member, token_id } = e {
                ex.member = Some(member);
                ex.credential = Some(token_id);
            }
            return Err(Refusal::Denied(reason));
        }
    };
    conn.authenticated();
    ex.member = Some(id.member);
    ex.credential = Some(id.via.credential_id().clone());
    let member = &snap.members[id.member];

    // Policy.
    let origin = req.fields.get("origin");
    let (gen, ip) = (snap.generation, client.ip);
    let refused = conn
        .refused_again(gen, id.member, origin, ip)
        .map(Err)
        .unwrap_or_else(|| {
            authorize::evaluate(member, origin, ip).map_err(|reason| {
                let diff = authorize::explain(member, origin, ip);
                conn.refused(gen, id.member, origin, ip, reason, diff)
            })
        });
    if let Err(refused) = refused {
        let reason = refused.reason;
        state
            .suggest
            .record_key(&member.name, refused.origin_key.as_deref(), client.ip);
        ex.diff = Some(refused.explained);
        ex.reason = Some(reason);
        match member.mode {
            Mode::Enforce => return Err(Refusal::Denied(reason)),
            Mode::Audit => ex.decision = Decision::Audit,
        }
    }

    Ok(Next::Forward {
        to: Target::Member(id),
        host,
    })
}

fn member_label<'s>(snap: &'s Snapshot, ex: &Exchange) -> &'s str {
    ex.member
        .and_then(|m| snap.members.get(m))
        .map(|m| m.name.as_str())
        .unwrap_or(NO_MEMBER)
}
