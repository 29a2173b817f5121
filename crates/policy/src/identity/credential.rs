//! What a request presents and what identifying it yields: the
//! credentials as borrowed from the request, and the identity (member and
//! credential) or the failure.

use std::sync::Arc;
use std::time::SystemTime;

use crate::member::MemberId;
use crate::Reason;

/// What the peer showed in its TLS handshake, computed once per connection.
#[derive(Clone, Debug, Default)]
pub struct PeerCert {
    pub sha256: [u8; 32],
    /// DNS names, e-mail addresses and URIs from subjectAltName.
    pub sans: Vec<String>,
}

/// A credential's public ID (token ID or certificate fingerprint). Shared,
/// because every request carries its caller's to the access log: a clone
/// is a reference count, not an allocation.
pub type CredentialId = Arc<str>;

/// How a member was identified: kept for the access log and revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Cert {
        sha256_hex: CredentialId,
    },
    Token {
        token_id: CredentialId,
    },
    /// A browser's session cookie, minted from `token_id`, good until
    /// `expires` (which an open WebSocket opened with it is held to).
    Session {
        token_id: CredentialId,
        expires: SystemTime,
    },
}

impl Via {
    /// The credential's public ID (token ID or certificate fingerprint).
    pub fn credential_id(&self) -> &CredentialId {
        match self {
            Via::Cert { sha256_hex } => sha256_hex,
            Via::Token { token_id } | Via::Session { token_id, .. } => token_id,
        }
    }
}

/// The fingerprint's hex, laid out on the stack: one allocation (the
/// shared string), not two.
pub(super) fn fingerprint_hex(sha256: &[u8; 32]) -> CredentialId {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(sha256, &mut hex).expect("64 bytes hold 32 in hex");
    Arc::from(std::str::from_utf8(&hex).expect("hex is ASCII"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub member: MemberId,
    pub via: Via,
}

/// Why nobody could be identified. Each maps to one reason code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentifyError {
    NoCredentials,
    BadToken,
    /// The token is known but its rotation window has closed.
    TokenExpired {
        member: MemberId,
        token_id: CredentialId,
    },
    UnknownCert,
}

impl IdentifyError {
    /// The reason a request refused for this is given.
    pub fn reason(&self) -> Reason {
        match self {
            IdentifyError::NoCredentials => Reason::NoCredentials,
            IdentifyError::BadToken => Reason::BadToken,
            IdentifyError::TokenExpired { .. } => Reason::TokenExpired,
            IdentifyError::UnknownCert => Reason::UnknownCert,
        }
    }
}

/// The credentials a request carries, borrowed from its headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Presented<'a> {
    pub cert: Option<&'a PeerCert>,
    pub bearer: Option<&'a [u8]>,
    pub header_token: Option<&'a [u8]>,
}

/// The token of an `Authorization: Bearer` header, if that is its scheme.
#[inline]
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let t = rest.trim_ascii();
    (!t.is_empty()).then_some(t)
}
