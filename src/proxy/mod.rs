//! The request path, one phase per module, in the order they run:
//!
//! ```text
//! admit        form of the target, client address, request ID, host
//! authenticate certificate, token or session → member (or a public route)
//! authorize    the member's policy (or the route's sources); audit mode
//! route        which upstream, for whom
//! forward      the upstream exchange; a tunnel or watched stream after it
//! respond      every refusal mapped to its answer
//! record       metrics, access log or denial log
//! ```
//!
//! [`serve`] runs them; the first four are [`decide`], synchronous, and
//! a refusal leaves them early by `?`. A request loads the config snapshot
//! once and uses that one to the end.

mod admit;
mod authenticate;
mod authorize;
mod conn;
pub mod cookie;
mod forward;
mod h2_websocket;
pub mod headers;
pub mod login;
mod record;
mod respond;
mod response_body;
mod route;
pub mod tunnel;

use admit::{admit, Admitted};
use authenticate::authenticate;
use authorize::authorize;
pub use conn::{Conn, CANCELS_TOLERATED};
use record::record;
use respond::respond;
pub use response_body::ResponseBody;
use route::{route, Next};

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header;
use http::uri::PathAndQuery;
use http::{Method, Response};
use http_body_util::Either;

use crate::client_ip::ClientIp;
use crate::config::Snapshot;
use crate::deny_page;
use crate::message::{local_body, ClientRequest, Fields, HeadFields, LocalBody};
use crate::observe::metrics::NO_MEMBER;
use crate::request_id::{Clock, RequestId};
use crate::state::State;
use crate::upstream::{self, UpstreamError};
use clawgate_policy::authorize::Explained;
use clawgate_policy::identity::CredentialId;
use clawgate_policy::member::MemberId;
use clawgate_policy::Reason;
use forward::forward;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<ResponseBody, LocalBody>;

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
pub const SESSION_COOKIE: &str = clawgate_policy::session::COOKIE_NAME;

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

/// Everything about a request that is decided before it is sent on, in
/// the order the phases run.
fn decide<'s>(
    state: &State,
    snap: &'s Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    ex: &mut Exchange,
) -> Result<Next<'s>, Refusal> {
    let Admitted { client, host } = admit(snap, conn, req, ex)?;
    // clawgate's own pages: the login form is for those without identity.
    if login::is_session_path(req.path()) {
        return Ok(Next::Login);
    }
    let principal = authenticate(state, snap, conn, req, ex, client)?;
    authorize(state, snap, conn, req, ex, &principal, client.ip)?;
    Ok(route(principal, host))
}

fn member_label<'s>(snap: &'s Snapshot, ex: &Exchange) -> &'s str {
    ex.member
        .and_then(|m| snap.members.get(m))
        .map(|m| m.name.as_str())
        .unwrap_or(NO_MEMBER)
}
