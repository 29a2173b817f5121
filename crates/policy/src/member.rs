//! A member: one compartment of the shared gateway.
//!
//! Built from `members/<name>.env` by `config::members`; read-only after
//! load. Everything a request needs about its member is here, precomputed
//! (header values, CIDR ranges, origin allowlist) so the request path only
//! looks things up.

use std::path::PathBuf;
use std::time::SystemTime;

use http::HeaderValue;

use crate::cidr::CidrSet;
use crate::origin::Allowlist;

/// Index of a member in `Snapshot::members`.
pub type MemberId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Denials are enforced.
    Enforce,
    /// Would-be denials are logged and counted, the request passes.
    Audit,
}

impl Mode {
    #[inline]
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// One accepted bearer token, by its hash.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub sha256: [u8; 32],
    /// `tok_` + the first 12 hex digits of the hash: safe to log.
    pub id: String,
    /// End of the rotation window, if any.
    pub expires: Option<SystemTime>,
}

impl TokenRecord {
    pub fn id_for(sha256: &[u8; 32]) -> String {
        format!("tok_{}", &hex::encode(sha256)[..12])
    }

    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub file: PathBuf,
    /// `name` as a header value for the identity header.
    pub name_header: HeaderValue,
    pub tokens: Vec<TokenRecord>,
    pub cert_sha256: Vec<[u8; 32]>,
    pub cert_san: Vec<String>,
    pub origins: Allowlist,
    pub egress: CidrSet,
    /// Index into `Snapshot::upstreams`.
    pub upstream: usize,
    pub scopes: Vec<String>,
    /// `scopes` joined with commas: sent as `x-openclaw-scopes` on every
    /// request, empty when the member has none (never absent).
    pub scopes_header: HeaderValue,
    pub mode: Mode,
    /// Unix permission bits of the member file, for `check`.
    pub file_mode: u32,
}

impl Member {
    #[inline]
    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.iter().find(|t| t.id == id)
    }
}
