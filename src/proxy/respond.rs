//! Respond: every refusal mapped to its response, in one place. The
//! status, body and header fields of each come from `deny` (and
//! `deny_page` for a page load); what the log says of it is set here too.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Either;

use super::{
    local_body, member_label, Body, Decision, Exchange, LocalBody, Refusal, SESSION_COOKIE,
};
use crate::config::Snapshot;
use crate::deny;
use crate::deny_page;
use clawgate_policy::Reason;

/// Map a refusal to its response; the only place statuses are chosen.
/// `html`: the client loads a page, so a denial is shown as one.
pub(super) fn respond(
    snap: &Snapshot,
    ex: &mut Exchange,
    refusal: Refusal,
    html: bool,
) -> Response<Body> {
    let request_id = ex.request_id.clone(); // inline: no allocation
    let rid = request_id.as_str();
    let resp = match refusal {
        Refusal::Denied(reason) => {
            ex.decision = Decision::Deny;
            ex.reason = Some(reason);
            // The diff is for a member fixing their own setup; to anyone
            // else (a public route's stranger) it would hand out the
            // allowlist. Theirs goes to the log only (`record`).
            let own = match (&ex.diff, ex.member) {
                (Some(diff), Some(_)) if !reason.is_authentication() => {
                    Some((member_label(snap, ex), &**diff))
                }
                _ => None,
            };
            local_body::answer(match own {
                _ if html => deny_page::page(reason, rid, own),
                _ if reason.is_authentication() => deny::unauthorized(reason, rid),
                Some((member, diff)) => deny::forbidden(reason, rid, member, diff),
                None => deny::forbidden_bare(reason, rid),
            })
        }
        Refusal::BadRequest(why) => error(ex, StatusCode::BAD_REQUEST, why),
        Refusal::NotFound(why) => error(ex, StatusCode::NOT_FOUND, why),
        Refusal::LoginRedirect(to) => {
            ex.decision = Decision::Deny;
            ex.reason = Some(Reason::NoCredentials);
            let mut r = local_body::empty(StatusCode::SEE_OTHER);
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            if let Ok(v) =
                HeaderValue::from_str(&clawgate_policy::session::clear_cookie(SESSION_COOKIE))
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Refusal::MethodNotAllowed => {
            let mut r = error(ex, StatusCode::METHOD_NOT_ALLOWED, "connect_refused");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
            r
        }
        Refusal::TooManyFailures(left) => {
            let mut r = error(ex, StatusCode::TOO_MANY_REQUESTS, "too_many_auth_failures");
            // With the answer's prewritten fields: this is the answer a
            // flood of bad tokens gets, once per request.
            if let Some(f) = r.body_mut().fields_mut() {
                let secs = left.as_secs().max(1);
                f.prepend("retry-after", itoa::Buffer::new().format(secs).as_bytes());
            }
            r
        }
        Refusal::TooManyConnections => {
            error(ex, StatusCode::SERVICE_UNAVAILABLE, "max_connections")
        }
        Refusal::PayloadTooLarge => error(ex, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        Refusal::BodyTimeout => {
            let mut r = error(ex, StatusCode::REQUEST_TIMEOUT, "request_body_timeout");
            // The rest of the body may still come: don't read it as a request.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
        Refusal::Upstream(e) => {
            ex.decision = Decision::Error;
            ex.error = Some(e.code());
            ex.upstream_failed = true;
            let up = ex.upstream.and_then(|u| snap.upstreams.get(u));
            let name = up.map_or("-", |u| u.name.as_str());
            // The address is the member's own gateway; a public route's
            // caller is a stranger and does not learn where it lives.
            let addr = up
                .filter(|_| ex.member.is_some())
                .map(|u| u.authority.as_str());
            local_body::answer(deny::upstream_error(e.status(), e.code(), rid, name, addr))
        }
    };
    resp.map(Either::Right)
}

/// An answer that is not a policy decision: the log's reason is its code.
fn error(ex: &mut Exchange, status: StatusCode, code: &'static str) -> Response<LocalBody> {
    ex.decision = Decision::Error;
    ex.error = Some(code);
    local_body::answer(deny::error(status, code, ex.request_id.as_str()))
}
