//! The parts of a loaded configuration the policy judges by, borrowed:
//! members, their credential index and the public routes. clawgate's
//! `Snapshot` owns them and lends a [`Rules`] view.

use crate::cidr::CidrSet;
use crate::identity::CredentialIndex;
use crate::member::{Member, MemberId};

/// A `[[public]]` route: a path prefix reachable without credentials from
/// its source networks only.
#[derive(Clone, Debug)]
pub struct PublicRoute {
    pub path_prefix: String,
    pub sources: CidrSet,
    /// Index into the configuration's upstreams.
    pub upstream: usize,
}

/// One configuration's policy, borrowed.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub members: &'a [Member],
    pub credentials: &'a CredentialIndex,
    pub public: &'a [PublicRoute],
}

impl<'a> Rules<'a> {
    pub fn member_by_name(&self, name: &str) -> Option<(MemberId, &'a Member)> {
        self.members
            .iter()
            .enumerate()
            .find(|(_, m)| m.name == name)
    }

    /// The public route whose prefix matches `path`, longest first.
    #[inline]
    pub fn public_route(&self, path: &str) -> Option<&'a PublicRoute> {
        self.public
            .iter()
            .filter(|r| path.starts_with(&r.path_prefix))
            .max_by_key(|r| r.path_prefix.len())
    }
}
