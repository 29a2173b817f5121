//! Who is calling: client certificate, then bearer token, then
//! `X-Clawgate-Token`.
//!
//! Tokens are never stored; members' files hold SHA-256 hashes. A presented
//! token is hashed once, its first 8 bytes pick a bucket, and the full
//! digest is compared in constant time. Lookup cost does not grow with the
//! number of members and timing reveals nothing about stored hashes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::SystemTime;

use subtle::ConstantTimeEq;

use crate::member::{Member, MemberId};

mod credential;
use credential::fingerprint_hex;
pub use credential::{bearer, CredentialId, IdentifyError, Identity, PeerCert, Presented, Via};

#[derive(Clone, Debug)]
struct TokenSlot {
    sha256: [u8; 32],
    member: MemberId,
    id: CredentialId,
    expires: Option<SystemTime>,
}

/// The keys are already SHA-256 prefixes: hashing them again is wasted work.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PrefixMap<V> = HashMap<u64, V, BuildHasherDefault<PrefixHasher>>;

/// Every member credential, indexed for the request path.
#[derive(Default)]
pub struct CredentialIndex {
    tokens: PrefixMap<Vec<TokenSlot>>,
    certs: HashMap<[u8; 32], MemberId>,
    sans: HashMap<String, MemberId>,
}

/// Two members claim the same credential.
#[derive(Debug)]
pub struct Conflict {
    pub credential: String,
    pub first: MemberId,
    pub second: MemberId,
}

#[inline]
fn prefix(d: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// SHA-256 via ring's assembly (several times the portable code's speed;
/// this runs on every token-authenticated request).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl CredentialIndex {
    pub fn build(members: &[Member]) -> Result<Self, Conflict> {
        let mut idx = CredentialIndex::default();
        for (id, m) in members.iter().enumerate() {
            for t in &m.tokens {
                let bucket = idx.tokens.entry(prefix(&t.sha256)).or_default();
                if let Some(other) = bucket.iter().find(|s| s.sha256 == t.sha256) {
                    return Err(Conflict {
                        credential: t.id.clone(),
                        first: other.member,
                        second: id,
                    });
                }
                bucket.push(TokenSlot {
                    sha256: t.sha256,
                    member: id,
                    id: t.id.as_str().into(),
                    expires: t.expires,
                });
            }
            for fp in &m.cert_sha256 {
                if let Some(first) = idx.certs.insert(*fp, id) {
                    return Err(Conflict {
                        credential: format!("CERT_SHA256 {}", hex::encode(fp)),
                        first,
                        second: id,
                    });
                }
            }
            for san in &m.cert_san {
                if let Some(first) = idx.sans.insert(san.to_ascii_lowercase(), id) {
                    return Err(Conflict {
                        credential: format!("CERT_SAN {san}"),
                        first,
                        second: id,
                    });
                }
            }
        }
        Ok(idx)
    }

    /// Identify the caller. Order: certificate, bearer, `X-Clawgate-Token`.
    /// A certificate no member claims falls through to the token (a browser
    /// may present an unrelated client cert); with no token it is
    /// `UnknownCert`.
    pub fn identify(&self, p: &Presented<'_>, now: SystemTime) -> Result<Identity, IdentifyError> {
        if let Some(cert) = p.cert {
            if let Some(id) = self.cert_member(cert) {
                return Ok(Identity {
                    member: id,
                    via: Via::Cert {
                        sha256_hex: fingerprint_hex(&cert.sha256),
                    },
                });
            }
        }
        let token = p.bearer.or(p.header_token);
        match token {
            Some(t) => self
                .identify_token(t, now)
                .map(|(member, token_id)| Identity {
                    member,
                    via: Via::Token { token_id },
                }),
            None if p.cert.is_some() => Err(IdentifyError::UnknownCert),
            None => Err(IdentifyError::NoCredentials),
        }
    }

    fn cert_member(&self, cert: &PeerCert) -> Option<MemberId> {
        self.certs.get(&cert.sha256).copied().or_else(|| {
            cert.sans
                .iter()
                .find_map(|s| self.sans.get(&s.to_ascii_lowercase()).copied())
        })
    }

    /// Look a token up by hash; returns the member and token ID.
    pub fn identify_token(
        &self,
        token: &[u8],
        now: SystemTime,
    ) -> Result<(MemberId, CredentialId), IdentifyError> {
        if token.is_empty() || token.len() > 512 {
            return Err(IdentifyError::BadToken);
        }
        let digest = sha256(token);
        let slot = self.lookup_digest(&digest).ok_or(IdentifyError::BadToken)?;
        if slot.expires.is_some_and(|e| now >= e) {
            return Err(IdentifyError::TokenExpired {
                member: slot.member,
                token_id: slot.id.clone(),
            });
        }
        Ok((slot.member, slot.id.clone()))
    }

    fn lookup_digest(&self, digest: &[u8; 32]) -> Option<&TokenSlot> {
        let bucket = self.tokens.get(&prefix(digest))?;
        // Walk the whole bucket so the time spent does not depend on which
        // slot matches.
        let mut found = None;
        for slot in bucket {
            if bool::from(slot.sha256.ct_eq(digest)) {
                found = Some(slot);
            }
        }
        found
    }

    /// Is this token ID of this member still valid at `now`? Used to
    /// re-check open connections after a reload or at expiry.
    pub fn token_valid(&self, member: MemberId, token_id: &str, now: SystemTime) -> bool {
        self.tokens
            .values()
            .flatten()
            .any(|s| s.member == member && &*s.id == token_id && s.expires.is_none_or(|e| now < e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::TokenRecord;
    use crate::testing::member;

    fn index_with(tokens: &[(&str, Option<SystemTime>)]) -> CredentialIndex {
        let mut m = member("alice");
        m.tokens = tokens
            .iter()
            .map(|(t, exp)| {
                let h = sha256(t.as_bytes());
                TokenRecord {
                    id: TokenRecord::id_for(&h),
                    sha256: h,
                    expires: *exp,
                }
            })
            .collect();
        let mut b = member("bob");
        b.cert_sha256 = vec![[7u8; 32]];
        b.cert_san = vec!["bob@example.com".into()];
        CredentialIndex::build(&[m, b]).unwrap()
    }

    fn tok(t: &str) -> Presented<'_> {
        Presented {
            bearer: Some(t.as_bytes()),
            ..Default::default()
        }
    }

    #[test]
    fn known_token_identifies_its_member() {
        let idx = index_with(&[("secret-a", None)]);
        let id = idx.identify(&tok("secret-a"), SystemTime::now()).unwrap();
        assert_eq!(id.member, 0);
        assert!(matches!(id.via, Via::Token { ref token_id } if token_id.starts_with("tok_")));
    }

    #[test]
    fn unknown_and_missing_tokens_are_told_apart() {
        let idx = index_with(&[("secret-a", None)]);
        assert_eq!(
            idx.identify(&tok("secret-b"), SystemTime::now()),
            Err(IdentifyError::BadToken)
        );
        assert_eq!(
            idx.identify(&Presented::default(), SystemTime::now()),
            Err(IdentifyError::NoCredentials)
        );
    }

    #[test]
    fn expired_token_is_refused_but_its_successor_works() {
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        let idx = index_with(&[("old", Some(past)), ("new", None)]);
        assert!(matches!(
            idx.identify(&tok("old"), SystemTime::now()),
            Err(IdentifyError::TokenExpired { member: 0, .. })
        ));
        assert!(idx.identify(&tok("new"), SystemTime::now()).is_ok());
    }

    #[test]
    fn cert_wins_over_token_and_san_matches_case_insensitively() {
        let idx = index_with(&[("secret-a", None)]);
        let cert = PeerCert {
            sha256: [1u8; 32],
            sans: vec!["BOB@example.com".into()],
        };
        let p = Presented {
            cert: Some(&cert),
            bearer: Some(b"secret-a"),
            header_token: None,
        };
        assert_eq!(idx.identify(&p, SystemTime::now()).unwrap().member, 1);
    }

    #[test]
    fn unknown_cert_without_token_is_unknown_cert() {
        let idx = index_with(&[]);
        let cert = PeerCert::default();
        let p = Presented {
            cert: Some(&cert),
            ..Default::default()
        };
        assert_eq!(
            idx.identify(&p, SystemTime::now()),
            Err(IdentifyError::UnknownCert)
        );
    }

    #[test]
    fn duplicate_token_hash_across_members_is_a_conflict() {
        let mut a = member("a");
        let mut b = member("b");
        let h = sha256(b"shared");
        let rec = TokenRecord {
            sha256: h,
            id: TokenRecord::id_for(&h),
            expires: None,
        };
        a.tokens = vec![rec.clone()];
        b.tokens = vec![rec];
        let c = CredentialIndex::build(&[a, b]).err().unwrap();
        assert_eq!((c.first, c.second), (0, 1));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
    }
}
