//! Route: where an authorized request goes. A public route's request to
//! the route's upstream, a member's to the member's. (clawgate's own
//! session pages need no identity: [`super::decide`] routes them to
//! `login` before authentication.)

use bytes::Bytes;

use super::authenticate::Principal;
use super::headers::Caller;
use crate::config::Snapshot;
use clawgate_policy::identity::Identity;

/// Where an admitted request goes next.
pub(super) enum Next<'s> {
    /// `/_clawgate/login` and its session paths.
    Login,
    /// To an upstream, with the host the client addressed.
    Forward { to: Target<'s>, host: Option<Bytes> },
}

/// Who a forwarded request is sent on for.
pub(super) enum Target<'s> {
    /// A `[[public]]` route.
    Public { prefix: &'s str, upstream: usize },
    /// An identified member whose policy admits the request.
    Member(Identity),
}

pub(super) fn route(principal: Principal<'_>, host: Option<Bytes>) -> Next<'_> {
    let to = match principal {
        Principal::Public(route) => Target::Public {
            prefix: &route.path_prefix,
            upstream: route.upstream,
        },
        Principal::Member(id) => Target::Member(id),
    };
    Next::Forward { to, host }
}

impl<'s> Target<'s> {
    /// The caller as the upstream head names it, and the upstream.
    pub(super) fn caller<'a>(&'a self, snap: &'s Snapshot) -> (Caller<'a>, usize)
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
