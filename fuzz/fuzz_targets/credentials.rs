//! Credential extraction: the `Authorization` header (`identity::bearer`),
//! `X-Clawgate-Token`, and a client certificate's SANs, looked up in a
//! `CredentialIndex`. No input panics, and only the exact token (or a
//! claimed SAN) identifies a member.
//!
//! Input: the first byte picks which headers carry the rest; a NUL byte
//! splits the Authorization value from the X-Clawgate-Token value.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use clawgate_policy::cidr::{self, CidrSet};
use clawgate_policy::identity::{self, CredentialIndex, PeerCert, Presented, Via};
use clawgate_policy::member::{Member, Mode, TokenRecord};
use clawgate_policy::origin::{self, Allowlist};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

const ALICE: &[u8] = b"alice-token-0123456789";
const BOB_OLD: &[u8] = b"bob-old-token";
const BOB_SAN: &str = "bob.members.test";

fn member(
    name: &str,
    tokens: &[(&[u8], Option<SystemTime>)],
    certs: Vec<[u8; 32]>,
    sans: &[&str],
) -> Member {
    Member {
        name: name.into(),
        file: PathBuf::from(format!("{name}.env")),
        name_header: HeaderValue::from_str(name).expect("name"),
        tokens: tokens
            .iter()
            .map(|(t, expires)| {
                let sha256 = identity::sha256(t);
                TokenRecord {
                    id: TokenRecord::id_for(&sha256),
                    sha256,
                    expires: *expires,
                }
            })
            .collect(),
        cert_sha256: certs,
        cert_san: sans.iter().map(|s| s.to_string()).collect(),
        origins: Allowlist::new(vec![origin::parse_pattern("none").expect("none")]),
        egress: CidrSet::new(cidr::parse_list("0.0.0.0/0").expect("cidr")),
        upstream: 0,
        scopes: Vec::new(),
        scopes_header: HeaderValue::from_static(""),
        mode: Mode::Enforce,
        file_mode: 0o600,
    }
}

fn index() -> &'static CredentialIndex {
    static IDX: OnceLock<CredentialIndex> = OnceLock::new();
    IDX.get_or_init(|| {
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let members = [
            member("alice", &[(ALICE, None)], Vec::new(), &[]),
            member("bob", &[(BOB_OLD, Some(past))], vec![[7u8; 32]], &[BOB_SAN]),
        ];
        match CredentialIndex::build(&members) {
            Ok(i) => i,
            Err(_) => panic!("the fixed members do not conflict"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (auth, header_token) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let bearer = identity::bearer(auth);
    if let Some(t) = bearer {
        // The token is a trimmed, non-empty part of the header.
        assert!(!t.is_empty() && t.len() < auth.len());
        assert_eq!(t, t.trim_ascii());
    }
    let header_token = header_token
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty());
    let cert = PeerCert {
        sha256: [mode; 32],
        sans: std::str::from_utf8(rest)
            .map(|s| s.split(',').take(8).map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let presented = Presented {
        cert: (mode & 1 == 1).then_some(&cert),
        bearer: if mode & 2 == 2 { bearer } else { None },
        header_token: if mode & 4 == 4 { header_token } else { None },
    };
    let now = SystemTime::now();
    if let Ok(id) = index().identify(&presented, now) {
        match &id.via {
            Via::Token { .. } => {
                let token = presented.bearer.or(presented.header_token);
                assert_eq!(token, Some(ALICE), "only alice's exact token identifies");
                assert_eq!(id.member, 0);
            }
            Via::Cert { .. } => {
                let c = presented.cert.expect("a cert was presented");
                assert!(
                    c.sha256 == [7u8; 32] || c.sans.iter().any(|s| s.eq_ignore_ascii_case(BOB_SAN))
                );
            }
            Via::Session { .. } => unreachable!("no session in this index"),
        }
    }
    let _ = index().identify_token(rest, now);
});
