//! Members built without files, for unit tests (here and, through the
//! `test-support` feature, in clawgate's).

use std::path::PathBuf;

use http::HeaderValue;

use crate::cidr::{self, CidrSet};
use crate::member::{Member, Mode};
use crate::origin::{self, Allowlist};

/// A member allowing no Origin header from 127.0.0.0/8.
pub fn member(name: &str) -> Member {
    member_with_name(name, "none", "127.0.0.0/8")
}

/// Member `alice` with these origins and CIDRs (whitespace-separated).
pub fn member_with(origins: &str, cidrs: &str) -> Member {
    member_with_name("alice", origins, cidrs)
}

fn member_with_name(name: &str, origins: &str, cidrs: &str) -> Member {
    Member {
        name: name.into(),
        file: PathBuf::from(format!("{name}.env")),
        name_header: HeaderValue::from_str(name).unwrap(),
        tokens: Vec::new(),
        cert_sha256: Vec::new(),
        cert_san: Vec::new(),
        origins: Allowlist::new(
            origins
                .split_whitespace()
                .map(|o| origin::parse_pattern(o).unwrap())
                .collect(),
        ),
        egress: CidrSet::new(cidr::parse_list(cidrs).unwrap()),
        upstream: 0,
        scopes: Vec::new(),
        scopes_header: HeaderValue::from_static(""),
        mode: Mode::Enforce,
        file_mode: 0o600,
    }
}
