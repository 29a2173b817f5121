//! Authorize: may this principal make this request from here. A public
//! route checks the client's address against its sources; a member's
//! request is judged by the policy crate (origin, then CIDRs). A refusal
//! carries its diff for the 403, is remembered by the connection (a client
//! that retries the same refusal is not re-explained) and feeds `suggest`.
//! A member in `MODE=audit` is let through and logged as a would-be deny.
//!
//! Per-member limits (quotas) belong here, after the policy: they need the
//! member, and a request the policy refuses must not spend them.

use std::net::IpAddr;
use std::sync::Arc;

use super::authenticate::Principal;
use super::{ClientRequest, Conn, Decision, Exchange, Refusal};
use crate::config::Snapshot;
use crate::state::State;
use clawgate_policy::authorize::{self, Diff, Explained};
use clawgate_policy::identity::Identity;
use clawgate_policy::member::Mode;
use clawgate_policy::origin::OriginDiff;
use clawgate_policy::rules::PublicRoute;
use clawgate_policy::Reason;

pub(super) fn authorize(
    state: &State,
    snap: &Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    ex: &mut Exchange,
    principal: &Principal,
    ip: IpAddr,
) -> Result<(), Refusal> {
    match principal {
        Principal::Public(route) => public(route, req, ex, ip),
        Principal::Member(id) => member(state, snap, conn, req, ex, id, ip),
    }
}

/// Public routes: no member, the sources' CIDRs only.
fn public(
    route: &PublicRoute,
    req: &ClientRequest,
    ex: &mut Exchange,
    ip: IpAddr,
) -> Result<(), Refusal> {
    if !route.sources.contains(ip) {
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
            client_ip: authorize::ip_diff(route.sources.nets(), ip),
        })));
        return Err(Refusal::Denied(Reason::CidrNotAllowed));
    }
    ex.decision = Decision::Public;
    Ok(())
}

fn member(
    state: &State,
    snap: &Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    ex: &mut Exchange,
    id: &Identity,
    ip: IpAddr,
) -> Result<(), Refusal> {
    let member = &snap.members[id.member];
    let origin = req.fields.get("origin");
    let gen = snap.generation;
    let refused = conn
        .refused_again(gen, id.member, origin, ip)
        .map(Err)
        .unwrap_or_else(|| {
            authorize::evaluate(member, origin, ip).map_err(|reason| {
                let diff = authorize::explain(member, origin, ip);
                conn.refused(gen, id.member, origin, ip, reason, diff)
            })
        });
    let Err(refused) = refused else {
        return Ok(());
    };
    let reason = refused.reason;
    state
        .suggest
        .record_key(&member.name, refused.origin_key.as_deref(), ip);
    ex.diff = Some(refused.explained);
    ex.reason = Some(reason);
    match member.mode {
        Mode::Enforce => Err(Refusal::Denied(reason)),
        Mode::Audit => {
            ex.decision = Decision::Audit;
            Ok(())
        }
    }
}
