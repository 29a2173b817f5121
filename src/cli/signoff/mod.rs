//! The sign-off report behind `clawgate check` (and the summary in
//! `oncall`): the port/bind table, the env-file map and the matrix of
//! pass/fail rows, each with its evidence.
//!
//! Rows that guard the key compartments (file permissions, shared tokens,
//! `ORIGINS=*`, expiries, the backup set) are computed from the files
//! themselves, so they still say what is wrong when the loader refuses the
//! config; the rest need the loaded snapshot.

mod certs;
mod files;
mod gateway;
mod ports;
pub mod stacks;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{gateway_config, rfc3339};
use crate::config::{self, error::Location, raw::RawBase, ConfigError, Snapshot};
use clawgate_policy::member::{Mode, TokenRecord};
pub use ports::{port_table, reach};

pub const CONFIG: &str = "config";
pub const KEYS: &str = "key compartments";
pub const EXPOSURE: &str = "exposure";
pub const OBSERVABILITY: &str = "observability";
pub const ROTATION: &str = "rotation";
pub const BACKUP: &str = "backup set";
pub const GATEWAY: &str = "gateway";

/// How close an expiry without a successor fails the rotation row.
pub const ROTATION_WARNING: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Passes, but needs attention soon (a certificate expiring).
    Warn,
    Fail,
}

/// One row of the sign-off matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub section: &'static str,
    pub check: &'static str,
    pub status: Status,
    pub evidence: String,
}

/// One line of the port/bind table.
#[derive(Clone, Debug, Serialize)]
pub struct Port {
    /// `member`, `admin` or `upstream`.
    pub role: &'static str,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tls: bool,
    /// `loopback`, `lan` (private ranges), `any`, or `unknown` (a host name).
    pub reach: &'static str,
    pub conflicts: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenEntry {
    pub id: String,
    pub expires: Option<String>,
    /// `active`, `expiring` (within 24 h) or `expired`.
    pub state: &'static str,
}

/// One line of the env-file map.
#[derive(Clone, Debug, Serialize)]
pub struct MemberEntry {
    pub name: String,
    pub file: String,
    /// Octal permission bits, e.g. `600`.
    pub permissions: String,
    pub tokens: Vec<TokenEntry>,
    pub cert_sha256: Vec<String>,
    pub cert_san: Vec<String>,
    pub origins: Vec<String>,
    pub cidrs: Vec<String>,
    pub upstream: String,
    pub scopes: Vec<String>,
    pub mode: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoadError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackupFile {
    pub path: String,
    pub present: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub passed: usize,
    pub warned: usize,
    pub failed: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config_dir: String,
    pub generated_at: String,
    pub pass: bool,
    pub summary: Summary,
    pub load_error: Option<LoadError>,
    pub ports: Vec<Port>,
    pub members: Vec<MemberEntry>,
    pub backup: Vec<BackupFile>,
    pub rows: Vec<Row>,
}

pub struct Options<'a> {
    pub dir: &'a Path,
    pub gateway_config: Option<&'a Path>,
    pub upstream: Option<&'a str>,
    /// The account the proxy runs as (`--user`); default: the owner of
    /// `clawgate.toml`.
    pub user: Option<&'a str>,
    pub now: SystemTime,
}

fn row(section: &'static str, check: &'static str, ok: bool, evidence: String) -> Row {
    Row {
        section,
        check,
        status: if ok { Status::Pass } else { Status::Fail },
        evidence,
    }
}

fn short(p: &Path, dir: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

/// Build the whole report. Never fails: problems become failing rows.
pub fn build(opts: &Options<'_>) -> Report {
    let dir = opts.dir;
    let raw = read_raw(dir);
    let loaded = config::load(dir);
    let members_dir = match &loaded {
        Ok(s) => s.members_dir.clone(),
        Err(_) => raw
            .as_ref()
            .and_then(|r| r.members.as_ref())
            .and_then(|m| m.dir.as_deref())
            .map(|d| resolve(dir, d))
            .unwrap_or_else(|| dir.join("members")),
    };
    let scans = files::scan_members(&members_dir);

    let mut rows = Vec::new();
    let mut load_error = None;
    match &loaded {
        Ok(s) => rows.push(row(
            CONFIG,
            "configuration loads",
            true,
            format!(
                "{}: {} upstream(s), {} member(s), {} public route(s)",
                config::BASE_FILE,
                s.upstreams.len(),
                s.members.len(),
                s.public.len()
            ),
        )),
        Err(e) => {
            load_error = Some(load_error_of(e));
            rows.push(row(CONFIG, "configuration loads", false, e.to_string()));
        }
    }

    rows.push(files::permissions_row(&scans, dir));
    rows.push(files::readable_row(&scans, &members_dir, dir, opts.user));
    rows.push(files::shared_tokens_row(&scans));
    rows.push(files::mode_row(&scans));

    let (ports, members) = match &loaded {
        Ok(s) => (port_table(s), member_map(s, opts.now)),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let admin = ports::admin_of(loaded.as_ref().ok(), raw.as_ref());
    match &loaded {
        Ok(s) => {
            rows.push(ports::member_listener_row(s));
            rows.push(ports::admin_row(admin));
            rows.push(ports::upstreams_row(&ports));
            rows.push(ports::conflicts_row(&ports));
        }
        Err(_) => {
            rows.push(row(
                EXPOSURE,
                "member listener is TLS or loopback-only",
                false,
                not_loaded(),
            ));
            rows.push(ports::admin_row(admin));
            for check in ["upstreams on loopback", "no port clashes or proxy loops"] {
                rows.push(row(EXPOSURE, check, false, not_loaded()));
            }
        }
    }
    rows.push(files::origins_row(&scans));
    match &loaded {
        Ok(s) => {
            rows.push(ports::access_log_row(s));
            rows.push(row(
                OBSERVABILITY,
                "metrics on the admin listener",
                true,
                format!(
                    "http://{}/metrics, /healthz, /readyz, /suggest",
                    s.admin.addr
                ),
            ));
        }
        Err(_) => {
            rows.push(row(OBSERVABILITY, "access log on", false, not_loaded()));
            rows.push(row(
                OBSERVABILITY,
                "metrics on the admin listener",
                false,
                not_loaded(),
            ));
        }
    }
    rows.push(files::rotation_row(&scans, opts.now));
    let backup = files::backup_set(dir, raw.as_ref(), &scans);
    rows.push(files::backup_row(&backup, dir));
    rows.extend(certs::rows(
        dir,
        raw.as_ref(),
        loaded.as_ref().ok(),
        opts.now,
    ));
    if let Some(gw) = opts.gateway_config {
        rows.extend(gateway::rows(loaded.as_ref().ok(), gw, opts.upstream));
    }

    let count = |st| rows.iter().filter(|r| r.status == st).count();
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    Report {
        config_dir: dir.display().to_string(),
        generated_at: rfc3339(opts.now),
        pass: failed == 0,
        summary: Summary {
            rows: rows.len(),
            passed: rows.len() - failed,
            warned,
            failed,
        },
        load_error,
        ports,
        members,
        backup,
        rows,
    }
}

fn not_loaded() -> String {
    "not evaluated: the configuration did not load (see the config row)".into()
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn read_raw(dir: &Path) -> Option<RawBase> {
    let text = fs::read_to_string(dir.join(config::BASE_FILE)).ok()?;
    toml::from_str(&text).ok()
}

fn load_error_of(e: &ConfigError) -> LoadError {
    LoadError {
        file: e.file.display().to_string(),
        line: e.line_number(),
        key: match &e.location {
            Location::Key(k) => Some(k.clone()),
            _ => None,
        },
        reason: e.reason.clone(),
    }
}

fn token_state(t: &TokenRecord, now: SystemTime) -> &'static str {
    match t.expires {
        Some(e) if now >= e => "expired",
        Some(e) if e <= now + ROTATION_WARNING => "expiring",
        _ => "active",
    }
}

/// The env-file map.
pub fn member_map(s: &Snapshot, now: SystemTime) -> Vec<MemberEntry> {
    s.members
        .iter()
        .map(|m| MemberEntry {
            name: m.name.clone(),
            file: short(&m.file, &s.dir),
            permissions: format!("{:03o}", m.file_mode),
            tokens: m
                .tokens
                .iter()
                .map(|t| TokenEntry {
                    id: t.id.clone(),
                    expires: t.expires.map(rfc3339),
                    state: token_state(t, now),
                })
                .collect(),
            cert_sha256: m.cert_sha256.iter().map(hex::encode).collect(),
            cert_san: m.cert_san.clone(),
            origins: m.origins.patterns().iter().map(|p| p.to_string()).collect(),
            cidrs: m.egress.nets().iter().map(|n| n.to_string()).collect(),
            upstream: s.upstreams[m.upstream].name.clone(),
            scopes: m.scopes.clone(),
            mode: match m.mode {
                Mode::Enforce => "enforce",
                Mode::Audit => "audit",
            },
        })
        .collect()
}
