//! The outer layer of the request path: every refusal mapped to its
//! response in one place, and every finished exchange counted and logged.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Either;

use super::{local_body, member_label, Body, Conn, Decision, Exchange, Refusal, SESSION_COOKIE};
use crate::access_log::{Record, Timestamp};
use crate::config::Snapshot;
use crate::deny;
use crate::deny_page;
use crate::metrics::NO_UPSTREAM;
use crate::state::State;
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
        Refusal::BadRequest(why) => {
            ex.decision = Decision::Error;
            ex.error = Some(why);
            local_body::answer(deny::error(StatusCode::BAD_REQUEST, why, rid))
        }
        Refusal::NotFound(why) => {
            ex.decision = Decision::Error;
            ex.error = Some(why);
            local_body::answer(deny::error(StatusCode::NOT_FOUND, why, rid))
        }
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
            ex.decision = Decision::Error;
            ex.error = Some("connect_refused");
            let mut r = local_body::answer(deny::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "connect_refused",
                rid,
            ));
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
            r
        }
        Refusal::TooManyFailures(left) => {
            ex.decision = Decision::Error;
            ex.error = Some("too_many_auth_failures");
            let mut r = local_body::answer(deny::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_auth_failures",
                rid,
            ));
            // With the answer's prewritten fields: this is the answer a
            // flood of bad tokens gets, once per request.
            if let Some(f) = r.body_mut().fields_mut() {
                let secs = left.as_secs().max(1);
                f.prepend("retry-after", itoa::Buffer::new().format(secs).as_bytes());
            }
            r
        }
        Refusal::TooManyConnections => {
            ex.decision = Decision::Error;
            ex.error = Some("max_connections");
            local_body::answer(deny::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "max_connections",
                rid,
            ))
        }
        Refusal::PayloadTooLarge => {
            ex.decision = Decision::Error;
            ex.error = Some("body_too_large");
            local_body::answer(deny::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                rid,
            ))
        }
        Refusal::BodyTimeout => {
            ex.decision = Decision::Error;
            ex.error = Some("request_body_timeout");
            let mut r = local_body::answer(deny::error(
                StatusCode::REQUEST_TIMEOUT,
                "request_body_timeout",
                rid,
            ));
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

/// Count and log one finished exchange (response headers sent).
pub(super) fn record(
    state: &State,
    snap: &Snapshot,
    conn: &Conn,
    ex: &Exchange,
    status: StatusCode,
    bytes_out: Option<u64>,
) {
    let member = member_label(snap, ex);
    let upstream = ex
        .upstream
        .and_then(|u| snap.upstreams.get(u))
        .map(|u| u.name.as_str());
    let m = &state.metrics;
    let mut handles = conn.handles.lock().unwrap_or_else(|e| e.into_inner());
    let key = (snap.generation, ex.member, ex.upstream, status.as_u16());
    super::conn::cached(&mut handles.requests, key, || {
        m.requests
            .with_label_values(&[member, upstream.unwrap_or(NO_UPSTREAM), status.as_str()])
    })
    .inc();
    let secs = ex.clock.since_epoch.as_secs() as i64;
    match (ex.decision, ex.reason) {
        (Decision::Deny, Some(r)) => {
            let key = (snap.generation, ex.member, r);
            super::conn::cached(&mut handles.denials, key, || {
                m.denials.with_label_values(&[member, r.code()])
            })
            .inc();
            if ex.member.is_some() {
                m.member_last_denial
                    .with_label_values(&[member, r.code()])
                    .set(secs);
            }
        }
        (Decision::Audit, Some(r)) => m
            .audit_would_deny
            .with_label_values(&[member, r.code()])
            .inc(),
        _ => {}
    }
    if let (Some(id), Decision::Allow | Decision::Audit) = (ex.member, ex.decision) {
        super::conn::cached(&mut handles.member_allowed, (snap.generation, id), || {
            m.member_last_allowed.with_label_values(&[member])
        })
        .set(secs);
    }
    if let (Some(cred), Some(id), Decision::Allow | Decision::Audit) =
        (&ex.credential, ex.member, ex.decision)
    {
        if cred.starts_with("tok_") {
            let slot = &mut handles.token_used;
            let fresh = matches!(slot, Some(((g, m, c), _)) if *g == snap.generation && *m == id && c == cred);
            if !fresh {
                *slot = Some((
                    (snap.generation, id, cred.clone()),
                    m.token_last_used.with_label_values(&[member, cred]),
                ));
            }
            if let Some((_, gauge)) = slot {
                gauge.set(secs);
            }
        }
    }
    drop(handles);
    // Read only by the lines below: none on an allowed request with the
    // access log off.
    let rid = || ex.request_id.as_str();
    let path = || ex.path.as_ref().map(|p| p.path()).unwrap_or("-");
    if state.access_log.enabled() {
        state.access_log.write(&Record {
            ts: Timestamp::now(),
            kind: "http",
            request_id: rid(),
            member,
            credential: ex.credential.as_deref(),
            client_ip: ex.client.map(|c| c.ip),
            ip_source: ex.client.map(|c| c.source),
            method: ex.method.as_str(),
            path: path(),
            status: status.as_u16(),
            decision: ex.decision.as_str(),
            reason: ex.reason.map(|r| r.code()).or(ex.error),
            upstream,
            upstream_addr: ex
                .upstream
                .filter(|_| ex.upstream_failed)
                .and_then(|u| snap.upstreams.get(u))
                .map(|u| u.authority.as_str()),
            upstream_ms: ex.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms: ex
                .started
                .map_or(0.0, |s| s.elapsed().as_secs_f64() * 1000.0),
            bytes_in: ex.bytes_in,
            bytes_out,
            diff: ex.diff.as_deref(),
        });
    } else if let Some(explained) = &ex.diff {
        // The diff is always logged, even with the access log off.
        crate::deny_log::write(&crate::deny_log::Denial {
            at: ex.clock.since_epoch,
            request_id: rid(),
            member,
            path: path(),
            decision: ex.decision.as_str(),
            reason: ex.reason.map(|r| r.code()).unwrap_or("-"),
            diff: &explained.json,
        });
    }
}
