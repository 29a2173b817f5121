//! Authenticate: who is asking. On a `[[public]]` route no one needs to be
//! (the caller's own credentials travel on to the gateway); anywhere else
//! the caller is a member, known by client certificate or token (bearer or
//! `X-Clawgate-Token`), or else by a browser session. A single sign-on
//! session is one more source beside the login session, tried when no
//! certificate or token was presented.
//!
//! Failed attempts count against the client's address (`limiter`): past
//! the limit the answer is a 429 whatever is presented.

use super::{login, ClientRequest, Conn, Exchange, Refusal};
use crate::client_ip::ClientIp;
use crate::config::Snapshot;
use crate::state::State;
use clawgate_policy::identity::{self, IdentifyError, Identity, Via};
use clawgate_policy::rules::PublicRoute;

/// Who a request is from, as far as the policy is concerned.
pub(super) enum Principal<'s> {
    /// Anyone, on a public route.
    Public(&'s PublicRoute),
    /// An identified member.
    Member(Identity),
}

pub(super) fn authenticate<'s>(
    state: &State,
    snap: &'s Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    ex: &mut Exchange,
    client: ClientIp,
) -> Result<Principal<'s>, Refusal> {
    if let Some(route) = snap.public_route(req.path()) {
        return Ok(Principal::Public(route));
    }
    let now = ex.clock.now;
    let id = match identify(snap, conn, req, now) {
        Ok(id) => id,
        Err(IdentifyError::NoCredentials) => login::session_identity(snap, req, now)?,
        Err(e) => return Err(failed(state, snap, ex, client, e)),
    };
    conn.authenticated();
    ex.member = Some(id.member);
    ex.credential = Some(id.via.credential_id().clone());
    Ok(Principal::Member(id))
}

/// A certificate or token to a member. A connection remembers the tokens
/// it has seen, good and bad, for the configuration they were judged by:
/// keep-alive clients present the same one request after request.
fn identify(
    snap: &Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    now: std::time::SystemTime,
) -> Result<Identity, IdentifyError> {
    let h = &req.fields;
    let presented = identity::Presented {
        cert: conn.cert.as_ref(),
        bearer: h.get("authorization").and_then(identity::bearer),
        header_token: h
            .get("x-clawgate-token")
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty()),
    };
    let token = presented.bearer.or(presented.header_token);
    let certless_token = token.filter(|_| conn.cert.is_none());
    if let Some(t) = certless_token {
        if let Some(id) = conn.cached_identity(snap.generation, t, now) {
            return Ok(id);
        }
        if conn.known_bad(snap.generation, t) {
            return Err(IdentifyError::BadToken);
        }
    }
    snap.credentials
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
        })
}

/// The refusal for a failed identification, counted against the address.
fn failed(
    state: &State,
    snap: &Snapshot,
    ex: &mut Exchange,
    client: ClientIp,
    e: IdentifyError,
) -> Refusal {
    if let Some(left) = state.limiter.failed(client.ip, &snap.limits.per_ip) {
        return Refusal::TooManyFailures(left);
    }
    let reason = e.reason();
    if let IdentifyError::TokenExpired { member, token_id } = e {
        ex.member = Some(member);
        ex.credential = Some(token_id);
    }
    Refusal::Denied(reason)
}
