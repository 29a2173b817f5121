//! What the proxy would decide for a credential, origin and address,
//! given a configuration: the core of `clawgate explain`, through the same
//! identity index, public routes and [`authorize`] a live request meets.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::authorize::{self, Diff};
use crate::cidr;
use crate::identity::Presented;
use crate::member::MemberId;
use crate::rules::Rules;
use crate::Reason;

/// Who is asking.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// Credentials to identify, as a request would carry them.
    Presented(Presented<'a>),
    /// The member of this name, identification skipped.
    Member(&'a str),
}

/// The request to judge.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    pub path: &'a str,
    pub caller: Caller<'a>,
    pub origin: Option<&'a [u8]>,
    pub ip: IpAddr,
    pub now: SystemTime,
}

/// The answer, in the order the proxy takes its steps.
#[derive(Debug)]
pub enum Verdict {
    /// A public route matched the path: its sources alone decide.
    Public {
        upstream: usize,
        allowed: Result<(), Reason>,
    },
    /// Nobody could be identified (`member` is set when a known token has
    /// expired).
    Unidentified {
        reason: Reason,
        member: Option<MemberId>,
    },
    /// `Caller::Member` names no member.
    NoSuchMember,
    /// An identified member, allowed or refused with the diff a 403 shows.
    Member {
        member: MemberId,
        allowed: Result<(), (Reason, Diff)>,
    },
}

/// Judge `q` under `rules`.
pub fn decide(rules: Rules<'_>, q: &Question<'_>) -> Verdict {
    let ip = cidr::canonical(q.ip);
    if let Some(route) = rules.public_route(q.path) {
        return Verdict::Public {
            upstream: route.upstream,
            allowed: if route.sources.contains(ip) {
                Ok(())
            } else {
                Err(Reason::CidrNotAllowed)
            },
        };
    }
    let member = match q.caller {
        Caller::Member(name) => match rules.member_by_name(name) {
            Some((id, _)) => id,
            None => return Verdict::NoSuchMember,
        },
        Caller::Presented(p) => match rules.credentials.identify(&p, q.now) {
            Ok(identity) => identity.member,
            Err(e) => {
                let member = match e {
                    crate::identity::IdentifyError::TokenExpired { member, .. } => Some(member),
                    _ => None,
                };
                return Verdict::Unidentified {
                    reason: e.reason(),
                    member,
                };
            }
        },
    };
    let m = &rules.members[member];
    Verdict::Member {
        member,
        allowed: authorize::evaluate(m, q.origin, ip)
            .map_err(|reason| (reason, authorize::explain(m, q.origin, ip))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cidr::CidrSet;
    use crate::identity::{sha256, CredentialIndex};
    use crate::member::{Member, TokenRecord};
    use crate::rules::PublicRoute;
    use crate::testing::member_with;

    fn alice() -> Member {
        let mut m = member_with("https://app.example.com", "10.0.0.0/8");
        let past = SystemTime::now() - Duration::from_secs(60);
        m.tokens = [("secret-a", None), ("old", Some(past))]
            .into_iter()
            .map(|(t, expires)| {
                let h = sha256(t.as_bytes());
                TokenRecord {
                    id: TokenRecord::id_for(&h),
                    sha256: h,
                    expires,
                }
            })
            .collect();
        m
    }

    fn ask(path: &str, caller: Caller<'_>, origin: Option<&str>, ip: &str) -> Verdict {
        let members = [alice()];
        let credentials = CredentialIndex::build(&members).unwrap();
        let public = [PublicRoute {
            path_prefix: "/hooks/".into(),
            sources: CidrSet::new(crate::cidr::parse_list("192.0.2.0/24").unwrap()),
            upstream: 3,
        }];
        let rules = Rules {
            members: &members,
            credentials: &credentials,
            public: &public,
        };
        let q = Question {
            path,
            caller,
            origin: origin.map(str::as_bytes),
            ip: ip.parse().unwrap(),
            now: SystemTime::now(),
        };
        decide(rules, &q)
    }

    fn bearer(t: &str) -> Caller<'_> {
        Caller::Presented(Presented {
            bearer: Some(t.as_bytes()),
            ..Default::default()
        })
    }

    #[test]
    fn a_public_route_is_judged_by_its_sources_before_any_credential() {
        let v = ask("/hooks/x", bearer("nope"), None, "::ffff:192.0.2.9");
        assert!(
            matches!(
                v,
                Verdict::Public {
                    upstream: 3,
                    allowed: Ok(())
                }
            ),
            "{v:?}"
        );
        let v = ask("/hooks/x", bearer("secret-a"), None, "10.0.0.1");
        assert!(matches!(
            v,
            Verdict::Public {
                allowed: Err(Reason::CidrNotAllowed),
                ..
            }
        ));
    }

    #[test]
    fn unidentified_callers_get_the_reason_a_request_would() {
        let none = Caller::Presented(Presented::default());
        let v = ask("/", none, None, "10.0.0.1");
        assert!(matches!(
            v,
            Verdict::Unidentified {
                reason: Reason::NoCredentials,
                member: None
            }
        ));
        let v = ask("/", bearer("nope"), None, "10.0.0.1");
        assert!(matches!(
            v,
            Verdict::Unidentified {
                reason: Reason::BadToken,
                member: None
            }
        ));
        let v = ask("/", bearer("old"), None, "10.0.0.1");
        assert!(matches!(
            v,
            Verdict::Unidentified {
                reason: Reason::TokenExpired,
                member: Some(0)
            }
        ));
    }

    #[test]
    fn a_member_is_allowed_or_refused_with_the_diff() {
        let ok = Some("https://app.example.com");
        let v = ask("/", bearer("secret-a"), ok, "10.0.0.1");
        assert!(matches!(
            v,
            Verdict::Member {
                member: 0,
                allowed: Ok(())
            }
        ));
        let v = ask("/", Caller::Member("bob"), ok, "10.0.0.1");
        assert!(matches!(v, Verdict::NoSuchMember));
        let v = ask("/hooks/", Caller::Member("bob"), ok, "192.0.2.1");
        assert!(matches!(
            v,
            Verdict::Public {
                allowed: Ok(()),
                ..
            }
        ));
        let v = ask("/", Caller::Member("alice"), ok, "192.0.2.1");
        let Verdict::Member {
            allowed: Err((reason, diff)),
            ..
        } = v
        else {
            panic!("{v:?}");
        };
        assert_eq!(reason, Reason::CidrNotAllowed);
        assert_eq!(diff.client_ip.allowed, vec!["10.0.0.0/8"]);
    }
}
