//! Open WebSockets and event streams judged again when the configuration
//! reloads: a [`Grant`] records what let one open, [`still_allowed`]
//! answers whether it would still be let in, with the same [`Reason`]s and
//! the same [`authorize::evaluate`] a new request gets.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::authorize;
use crate::identity::{PeerCert, Presented, Via};
use crate::member::Member;
use crate::rules::Rules;
use crate::Reason;

/// What authorized an open tunnel or event stream.
#[derive(Clone, Debug)]
pub struct Grant {
    pub member: Option<String>,
    pub via: Option<Via>,
    pub cert: Option<PeerCert>,
    pub origin: Option<Vec<u8>>,
    pub client_ip: IpAddr,
    pub public_prefix: Option<String>,
    pub expires: Option<SystemTime>,
    /// Why it ends when `expires` passes: the token's expiry, or the
    /// browser session's when that ends first.
    pub expiry: Reason,
}

impl Grant {
    /// A stranger on the public route with this prefix.
    pub fn public(prefix: &str, origin: Option<Vec<u8>>, client_ip: IpAddr) -> Grant {
        Grant {
            member: None,
            via: None,
            cert: None,
            origin,
            client_ip,
            public_prefix: Some(prefix.to_string()),
            expires: None,
            expiry: Reason::TokenExpired,
        }
    }

    /// An identified member, held to its token's expiry or its session's,
    /// whichever comes first.
    pub fn member(
        member: &Member,
        via: &Via,
        cert: Option<PeerCert>,
        origin: Option<Vec<u8>>,
        client_ip: IpAddr,
    ) -> Grant {
        let token = |id| member.token(id).and_then(|t| t.expires);
        let (expires, expiry) = match via {
            Via::Token { token_id } => (token(token_id), Reason::TokenExpired),
            Via::Session { token_id, expires } => match token(token_id) {
                Some(t) if t <= *expires => (Some(t), Reason::TokenExpired),
                _ => (Some(*expires), Reason::SessionExpired),
            },
            Via::Cert { .. } => (None, Reason::TokenExpired),
        };
        Grant {
            member: Some(member.name.clone()),
            via: Some(via.clone()),
            cert,
            origin,
            client_ip,
            public_prefix: None,
            expires,
            expiry,
        }
    }
}

/// Would `grant` still be given under `rules` at `now`?
pub fn still_allowed(rules: Rules<'_>, grant: &Grant, now: SystemTime) -> Result<(), Reason> {
    if let Some(prefix) = &grant.public_prefix {
        return match rules.public_route(prefix) {
            Some(r) if r.sources.contains(grant.client_ip) => Ok(()),
            _ => Err(Reason::CidrNotAllowed),
        };
    }
    let name = grant.member.as_deref().ok_or(Reason::MemberRemoved)?;
    let (id, m) = rules.member_by_name(name).ok_or(Reason::MemberRemoved)?;
    match &grant.via {
        Some(Via::Token { token_id }) | Some(Via::Session { token_id, .. }) => {
            if m.token(token_id).is_none() {
                return Err(Reason::BadToken);
            }
            if !rules.credentials.token_valid(id, token_id, now) {
                return Err(Reason::TokenExpired);
            }
        }
        Some(Via::Cert { .. }) => {
            let cert = grant.cert.as_ref().ok_or(Reason::UnknownCert)?;
            let presented = Presented {
                cert: Some(cert),
                ..Default::default()
            };
            match rules.credentials.identify(&presented, now) {
                Ok(i) if i.member == id => {}
                _ => return Err(Reason::UnknownCert),
            }
        }
        None => return Err(Reason::MemberRemoved),
    }
    authorize::evaluate(m, grant.origin.as_deref(), grant.client_ip)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cidr::{self, CidrSet};
    use crate::identity::{sha256, CredentialIndex};
    use crate::member::TokenRecord;
    use crate::rules::PublicRoute;
    use crate::testing::{member, member_with};

    const IP: &str = "10.0.0.7";

    fn token(secret: &str, expires: Option<SystemTime>) -> TokenRecord {
        let h = sha256(secret.as_bytes());
        TokenRecord {
            id: TokenRecord::id_for(&h),
            sha256: h,
            expires,
        }
    }

    /// `still_allowed` over these members and one public route
    /// (`/hooks/` from 10.0.0.0/8).
    fn judge(members: &[Member], grant: &Grant, now: SystemTime) -> Result<(), Reason> {
        let credentials = CredentialIndex::build(members).unwrap();
        let public = [PublicRoute {
            path_prefix: "/hooks/".into(),
            sources: CidrSet::new(cidr::parse_list("10.0.0.0/8").unwrap()),
            upstream: 0,
        }];
        let rules = Rules {
            members,
            credentials: &credentials,
            public: &public,
        };
        still_allowed(rules, grant, now)
    }

    fn alice(origins: &str, cidrs: &str) -> Member {
        let mut m = member_with(origins, cidrs);
        m.tokens = vec![token("secret-a", None)];
        m
    }

    fn token_grant(m: &Member, origin: Option<&str>) -> Grant {
        let via = Via::Token {
            token_id: m.tokens[0].id.as_str().into(),
        };
        let origin = origin.map(|o| o.as_bytes().to_vec());
        Grant::member(m, &via, None, origin, IP.parse().unwrap())
    }

    #[test]
    fn an_unchanged_configuration_keeps_the_grant() {
        let m = alice("https://app.example.com", "10.0.0.0/8");
        let g = token_grant(&m, Some("https://app.example.com"));
        assert_eq!(judge(&[m], &g, SystemTime::now()), Ok(()));
    }

    #[test]
    fn a_policy_change_ends_it_with_the_reason_a_new_request_would_get() {
        let m = alice("https://app.example.com", "10.0.0.0/8");
        let g = token_grant(&m, Some("https://app.example.com"));
        let now = SystemTime::now();
        let moved = alice("https://other.example.com", "10.0.0.0/8");
        assert_eq!(judge(&[moved], &g, now), Err(Reason::OriginNotAllowed));
        let narrowed = alice("https://app.example.com", "192.0.2.0/24");
        assert_eq!(judge(&[narrowed], &g, now), Err(Reason::CidrNotAllowed));
    }

    #[test]
    fn a_removed_member_or_token_ends_it() {
        let m = alice("none", "10.0.0.0/8");
        let g = token_grant(&m, None);
        let now = SystemTime::now();
        assert_eq!(judge(&[member("bob")], &g, now), Err(Reason::MemberRemoved));
        let mut rotated = alice("none", "10.0.0.0/8");
        rotated.tokens = vec![token("secret-b", None)];
        assert_eq!(judge(&[rotated], &g, now), Err(Reason::BadToken));
        let mut expiring = alice("none", "10.0.0.0/8");
        expiring.tokens = vec![token("secret-a", Some(now - Duration::from_secs(1)))];
        assert_eq!(judge(&[expiring], &g, now), Err(Reason::TokenExpired));
    }

    #[test]
    fn a_session_ends_with_its_own_expiry_or_its_tokens_whichever_is_first() {
        let now = SystemTime::now();
        let (soon, later) = (
            now + Duration::from_secs(60),
            now + Duration::from_secs(600),
        );
        let mut m = alice("none", "10.0.0.0/8");
        m.tokens = vec![token("secret-a", Some(later))];
        let session = |expires| Via::Session {
            token_id: m.tokens[0].id.as_str().into(),
            expires,
        };
        let g = Grant::member(&m, &session(soon), None, None, IP.parse().unwrap());
        assert_eq!((g.expires, g.expiry), (Some(soon), Reason::SessionExpired));
        let far = later + Duration::from_secs(60);
        let g = Grant::member(&m, &session(far), None, None, IP.parse().unwrap());
        assert_eq!((g.expires, g.expiry), (Some(later), Reason::TokenExpired));
        assert_eq!(Reason::SessionExpired.code(), "session_expired");
    }

    #[test]
    fn a_certificate_no_longer_claimed_ends_it() {
        let cert = PeerCert {
            sha256: [9u8; 32],
            sans: Vec::new(),
        };
        let mut m = alice("none", "10.0.0.0/8");
        m.cert_sha256 = vec![cert.sha256];
        let via = Via::Cert {
            sha256_hex: "09".repeat(32).into(),
        };
        let g = Grant::member(&m, &via, Some(cert), None, IP.parse().unwrap());
        let now = SystemTime::now();
        assert_eq!(judge(std::slice::from_ref(&m), &g, now), Ok(()));
        m.cert_sha256.clear();
        assert_eq!(judge(&[m], &g, now), Err(Reason::UnknownCert));
    }

    #[test]
    fn a_public_route_is_held_to_its_sources() {
        let g = Grant::public("/hooks/", None, IP.parse().unwrap());
        assert_eq!(judge(&[], &g, SystemTime::now()), Ok(()));
        let g = Grant::public("/hooks/", None, "192.0.2.1".parse().unwrap());
        assert_eq!(
            judge(&[], &g, SystemTime::now()),
            Err(Reason::CidrNotAllowed)
        );
    }
}
