//! Record: every finished exchange counted (the per-connection handle
//! cache spares the registry's label lookups) and logged, to the access
//! log when it is on, else its denials to the denial log.

use http::StatusCode;

use super::{member_label, Conn, Decision, Exchange};
use crate::config::Snapshot;
use crate::observe::access_log::{Record, Timestamp};
use crate::observe::metrics::NO_UPSTREAM;
use crate::state::State;

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
    count(state, snap, conn, ex, member, upstream, status);
    log(state, snap, ex, member, upstream, status, bytes_out);
}

/// The request's metrics: its status, a denial by reason, when the member
/// was last allowed or denied and when a token was last used.
fn count(
    state: &State,
    snap: &Snapshot,
    conn: &Conn,
    ex: &Exchange,
    member: &str,
    upstream: Option<&str>,
    status: StatusCode,
) {
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
}

/// The access log's line, or with it off a denial's line on stderr.
#[allow(clippy::too_many_arguments)]
fn log(
    state: &State,
    snap: &Snapshot,
    ex: &Exchange,
    member: &str,
    upstream: Option<&str>,
    status: StatusCode,
    bytes_out: Option<u64>,
) {
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
        crate::observe::deny_log::write(&crate::observe::deny_log::Denial {
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
