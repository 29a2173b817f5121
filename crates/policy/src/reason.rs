//! Every way the policy says no, as one closed set.
//!
//! A [`Reason`]'s code is the same string in the response body, the access
//! log, `clawgate_denials_total{reason}` and the close frame of a revoked
//! WebSocket, so on-call can go from any one of them to the others. What a
//! reason becomes on the wire (status, body, header fields) is clawgate's
//! `deny` module, not this crate.

/// The closed set of denial reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    NoCredentials,
    BadToken,
    TokenExpired,
    UnknownCert,
    OriginNotAllowed,
    OriginMissing,
    CidrNotAllowed,
    /// An open tunnel's member is gone from the configuration.
    MemberRemoved,
    /// An open tunnel's browser session has reached its end.
    SessionExpired,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::NoCredentials,
        Reason::BadToken,
        Reason::TokenExpired,
        Reason::UnknownCert,
        Reason::OriginNotAllowed,
        Reason::OriginMissing,
        Reason::CidrNotAllowed,
        Reason::MemberRemoved,
        Reason::SessionExpired,
    ];

    #[inline]
    pub fn code(self) -> &'static str {
        match self {
            Reason::NoCredentials => "no_credentials",
            Reason::BadToken => "bad_token",
            Reason::TokenExpired => "token_expired",
            Reason::UnknownCert => "unknown_cert",
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::OriginMissing => "origin_missing",
            Reason::CidrNotAllowed => "cidr_not_allowed",
            Reason::MemberRemoved => "member_removed",
            Reason::SessionExpired => "session_expired",
        }
    }

    /// Who the caller is could not be established (or no longer can):
    /// such a refusal reveals nothing about members or policy.
    #[inline]
    pub fn is_authentication(self) -> bool {
        !matches!(
            self,
            Reason::OriginNotAllowed | Reason::OriginMissing | Reason::CidrNotAllowed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_words() {
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert!(codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }
}
