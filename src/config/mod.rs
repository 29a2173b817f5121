//! Configuration: `clawgate.toml` plus `members/*.env`, read and validated
//! into one immutable [`Snapshot`].
//!
//! Loading never touches the running proxy: a snapshot is either complete
//! and valid, or refused with a [`ConfigError`] naming file, line and fix.
//! `reload` swaps whole snapshots, so a request sees exactly one.

mod admin;
pub mod certs;
pub mod changes;
mod cx;
pub mod error;
mod load_members;
pub mod members;
mod nets;
pub mod raw;
mod sections;
mod snapshot;
pub mod tls;
mod upstreams;

use std::fs;
use std::path::Path;

pub use error::ConfigError;
pub use load_members::MemberFault;
use raw::RawBase;

pub const BASE_FILE: &str = "clawgate.toml";
pub const DEFAULT_IDENTITY_HEADER: &str = "x-forwarded-user";

pub use admin::{ADMIN_FIX, DEFAULT_ADMIN_ADDR};
pub use snapshot::*;

/// Load and validate the whole config directory: any bad file refuses it.
pub fn load(dir: &Path) -> Result<Snapshot, ConfigError> {
    read(dir, None, None).map(|l| l.snapshot)
}

pub struct Loaded {
    pub snapshot: Snapshot,
    pub faults: Vec<MemberFault>,
}

/// Load as a reload does: a broken member file blocks only that member
/// (its last good version in `previous` stays, a new one is left out);
/// `clawgate.toml` and credential conflicts still refuse the whole load.
pub fn load_keeping(dir: &Path, previous: Option<&Snapshot>) -> Result<Loaded, ConfigError> {
    read(dir, Some(previous), None)
}

/// [`load`] as if `candidate` were on disk (added, or replacing the file
/// there): the commands that write a member file check it this way first.
pub fn load_with(
    dir: &Path,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Snapshot, ConfigError> {
    read(dir, None, candidate).map(|l| l.snapshot)
}

/// `keep`: `None` refuses on any bad file; `Some(previous)` keeps going.
/// `candidate`: a member file's text to judge as if it were on disk.
fn read(
    dir: &Path,
    keep: Option<Option<&Snapshot>>,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Loaded, ConfigError> {
    let base_path = dir.join(BASE_FILE);
    let text = fs::read_to_string(&base_path).map_err(|e| {
        ConfigError::file(
            &base_path,
            format!("cannot read: {e} (pass --config DIR pointing at the directory holding {BASE_FILE})"),
        )
    })?;
    let raw: RawBase = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| error::line_of_offset(&text, s.start))
            .unwrap_or(0);
        ConfigError::line(&base_path, line, e.message().to_string())
    })?;
    let base_sha256 = clawgate_policy::identity::sha256(text.as_bytes());
    let cx = cx::Cx {
        dir,
        file: &base_path,
        text: &text,
    };
    build(&cx, raw, base_sha256, keep, candidate)
}

fn build(
    cx: &cx::Cx<'_>,
    raw: RawBase,
    base_sha256: [u8; 32],
    keep: Option<Option<&Snapshot>>,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Loaded, ConfigError> {
    let RawBase {
        listen,
        admin,
        upstreams,
        public,
        client_ip,
        members,
        log,
        timeouts,
        limits,
        session,
    } = raw;
    let (listen, tls) = sections::listen(cx, listen)?;
    let (admin_addr, allow_public) = admin::build(cx.file, cx.text, admin)?;
    let upstreams = upstreams::build(cx, upstreams)?;
    let (members_dir, default_upstream) = sections::members(cx, members, &upstreams)?;
    let public = sections::public(cx, public, &upstreams, default_upstream)?;
    let (trusted_proxies, proxy_protocol) = sections::client_ip(cx, client_ip)?;
    let log = sections::log(cx, log);
    let timeouts = sections::timeouts(timeouts);
    let limits = sections::limits(limits);
    let session = sections::session(cx, session)?;
    let mut fp = Fingerprint::new(&base_sha256);
    let members = load_members::load(
        &members_dir,
        &upstreams,
        default_upstream,
        &mut fp,
        keep,
        candidate,
    )?;
    let snapshot = Snapshot {
        generation: 0,
        dir: cx.dir.to_path_buf(),
        fingerprint: fp.finish(),
        listen,
        tls,
        admin: Admin {
            addr: admin_addr,
            allow_public,
        },
        upstreams,
        public,
        trusted_proxies,
        proxy_protocol,
        members_dir,
        members: members.list,
        credentials: members.credentials,
        log,
        timeouts,
        limits,
        session,
    };
    Ok(Loaded {
        snapshot,
        faults: members.faults,
    })
}
