//! `members/<name>.env`: one file per member, one member per compartment.
//!
//! Parsed with a real env-file parser (dotenvy), then each key is turned into
//! domain types. Errors carry the line of the offending key. Files readable
//! by group or others are refused, as ssh refuses private keys.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use http::HeaderValue;

use super::error::ConfigError;
use clawgate_policy::cidr::CidrSet;
use clawgate_policy::member::{Member, Mode, TokenRecord};
use clawgate_policy::origin::{self, Allowlist};

/// Every key a member file may set, in the order `changes` names them.
pub const KEYS: &[&str] = &[
    "TOKEN_SHA256",
    "CERT_SHA256",
    "CERT_SAN",
    "ORIGINS",
    "EGRESS_CIDRS",
    "UPSTREAM",
    "SCOPES",
    "MODE",
];

/// The member file names in `dir` (`*.env`), sorted.
pub fn member_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = fs::read_dir(dir).map_err(|e| {
        ConfigError::file(
            dir,
            format!("cannot read the members directory: {e} (create it, or set [members] dir)"),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "env"))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A member file read but not yet bound to the snapshot's upstreams.
#[derive(Debug)]
pub struct ParsedMember {
    pub member: Member,
    /// `UPSTREAM` as written and its line, resolved by the caller.
    pub upstream: Option<(String, usize)>,
    /// SHA-256 of the file as read, for the snapshot's fingerprint.
    pub file_sha256: [u8; 32],
}

/// Parse one member file.
pub fn parse_member_file(path: &Path) -> Result<ParsedMember, ConfigError> {
    let name = name_of(path)?;
    let file_mode = private_mode(path)?;
    let text = fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    parse_member_text(path, name, &text, file_mode)
}

/// A member file's text before it is written: `clawgate member add` and
/// the token commands have the loader check what they are about to write.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Where it will be written: `members_dir/NAME.env` of the snapshot.
    pub path: &'a Path,
    pub text: &'a str,
}

/// The member files to load: those in `dir`, plus `candidate`'s path.
pub fn member_files_with(
    dir: &Path,
    candidate: Option<Candidate<'_>>,
) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = member_files(dir)?;
    if let Some(c) = candidate.filter(|c| !files.iter().any(|f| f == c.path)) {
        files.push(c.path.to_path_buf());
        files.sort();
    }
    Ok(files)
}

/// Parse `path`: from the candidate's text when it is the candidate's
/// path, from the file otherwise.
pub fn parse_member(
    path: &Path,
    candidate: Option<Candidate<'_>>,
) -> Result<ParsedMember, ConfigError> {
    match candidate.filter(|c| c.path == path) {
        Some(c) => parse_candidate(c),
        None => parse_member_file(path),
    }
}

/// Parse a [`Candidate`] as if it were on disk: a new file will be mode
/// 0600, a rewritten one keeps the mode it has.
fn parse_candidate(c: Candidate<'_>) -> Result<ParsedMember, ConfigError> {
    let name = name_of(c.path)?;
    let file_mode = if c.path.exists() {
        private_mode(c.path)?
    } else {
        0o600
    };
    parse_member_text(c.path, name, c.text, file_mode)
}

/// The member name a file stands for (its stem), validated.
fn name_of(path: &Path) -> Result<&str, ConfigError> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if valid_name(name) {
        return Ok(name);
    }
    Err(ConfigError::file(
        path,
        format!("member name '{name}' (from the file name) must be {NAME_RULE}; rename the file"),
    ))
}

/// The file's permission bits, refused when group or others may read it.
fn private_mode(path: &Path) -> Result<u32, ConfigError> {
    let meta =
        fs::metadata(path).map_err(|e| ConfigError::file(path, format!("cannot stat: {e}")))?;
    let file_mode = meta.permissions().mode() & 0o777;
    if file_mode & 0o077 != 0 {
        return Err(ConfigError::file(
            path,
            format!(
                "permissions {file_mode:03o} let group/others read it; run: chmod 600 {}",
                path.display()
            ),
        ));
    }
    Ok(file_mode)
}

/// Parse the contents of member file `path` (member `name`, whose mode
/// has been checked).
fn parse_member_text(
    path: &Path,
    name: &str,
    text: &str,
    file_mode: u32,
) -> Result<ParsedMember, ConfigError> {
    let lines = key_lines(text);

    let mut values: HashMap<String, String> = HashMap::new();
    let iter = dotenvy::from_read_iter(text.as_bytes());
    for item in iter {
        let (key, value) = item.map_err(|e| env_syntax_error(path, text, e))?;
        let line = lines.get(&key).map(|v| v[0]).unwrap_or(0);
        if !KEYS.contains(&key.as_str()) {
            return Err(ConfigError::line(
                path,
                line,
                format!("unknown key {key}; known keys: {}", KEYS.join(", ")),
            ));
        }
        if let Some(ls) = lines.get(&key).filter(|ls| ls.len() > 1) {
            return Err(ConfigError::line(
                path,
                ls[1],
                format!(
                    "{key} is set again (first on line {}); put all values in one line, separated by spaces",
                    ls[0]
                ),
            ));
        }
        values.insert(key, value);
    }
    let line_of = |k: &str| lines.get(k).map(|v| v[0]).unwrap_or(0);
    let err = |k: &str, why: String| ConfigError::line(path, line_of(k), format!("{k}: {why}"));

    let tokens = match values.get("TOKEN_SHA256") {
        Some(v) => parse_tokens(v).map_err(|why| err("TOKEN_SHA256", why))?,
        None => Vec::new(),
    };
    let cert_sha256 = match values.get("CERT_SHA256") {
        Some(v) => split_list(v)
            .map(parse_fingerprint)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| err("CERT_SHA256", why))?,
        None => Vec::new(),
    };
    let cert_san: Vec<String> = values
        .get("CERT_SAN")
        .map(|v| split_list(v).map(str::to_string).collect())
        .unwrap_or_default();
    if tokens.is_empty() && cert_sha256.is_empty() && cert_san.is_empty() {
        return Err(ConfigError::file(
            path,
            "no credential: set TOKEN_SHA256 (see `clawgate token new NAME`), CERT_SHA256 or CERT_SAN",
        ));
    }

    let origins_raw = values.get("ORIGINS").ok_or_else(|| {
        ConfigError::file(
            path,
            "ORIGINS is missing: list the browser origins this member uses, or ORIGINS=none for CLI-only members",
        )
    })?;
    let patterns = split_list(origins_raw)
        .map(origin::parse_pattern)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| err("ORIGINS", why))?;
    if patterns.is_empty() {
        return Err(err(
            "ORIGINS",
            "empty; use ORIGINS=none for CLI-only members".into(),
        ));
    }

    let cidrs_raw = values.get("EGRESS_CIDRS").ok_or_else(|| {
        ConfigError::file(
            path,
            "EGRESS_CIDRS is missing: list the networks this member connects from (0.0.0.0/0 ::/0 for anywhere)",
        )
    })?;
    let nets = super::nets::parse_list(cidrs_raw).map_err(|why| err("EGRESS_CIDRS", why))?;
    if nets.is_empty() {
        return Err(err(
            "EGRESS_CIDRS",
            "empty: list at least one network".into(),
        ));
    }

    let scopes: Vec<String> = values
        .get("SCOPES")
        .map(|v| split_list(v).map(str::to_string).collect())
        .unwrap_or_default();
    for s in &scopes {
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-*".contains(&b))
        {
            return Err(err(
                "SCOPES",
                format!("'{s}' is not a scope name (e.g. operator.read)"),
            ));
        }
    }
    let scopes_header = HeaderValue::from_str(&scopes.join(","))
        .map_err(|_| err("SCOPES", "not a valid header value".into()))?;

    let mode = match values.get("MODE").map(|s| s.trim().to_ascii_lowercase()) {
        None => Mode::Enforce,
        Some(m) if m == "enforce" => Mode::Enforce,
        Some(m) if m == "audit" => Mode::Audit,
        Some(m) => return Err(err("MODE", format!("'{m}' is neither enforce nor audit"))),
    };

    let upstream = values
        .get("UPSTREAM")
        .map(|u| (u.trim().to_string(), line_of("UPSTREAM")));

    Ok(ParsedMember {
        member: Member {
            name_header: HeaderValue::from_str(name)
                .map_err(|_| ConfigError::file(path, "member name is not a valid header value"))?,
            name: name.to_string(),
            file: path.to_path_buf(),
            tokens,
            cert_sha256,
            cert_san,
            origins: Allowlist::new(patterns),
            egress: CidrSet::new(nets),
            upstream: usize::MAX,
            scopes,
            scopes_header,
            mode,
            file_mode,
        },
        upstream,
        file_sha256: clawgate_policy::identity::sha256(text.as_bytes()),
    })
}

/// What a member name may be: the loader takes it from the file name.
pub const NAME_RULE: &str = "1-64 of a-z 0-9 . _ - starting with a letter or digit";

/// Whether `name` follows [`NAME_RULE`].
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Split a list value on commas and whitespace.
pub fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// `HEX` or `HEX@2026-12-31T00:00:00Z` (expiry of the rotation window).
pub fn parse_tokens(v: &str) -> Result<Vec<TokenRecord>, String> {
    split_list(v)
        .map(|entry| {
            let (hash, expires) = match entry.split_once('@') {
                Some((h, t)) => (h, Some(parse_time(t)?)),
                None => (entry, None),
            };
            let sha256 = parse_hex32(hash).ok_or_else(|| {
                format!(
                    "'{}' is not a 64-digit hex SHA-256; store the hash printed by `clawgate token new`, never the token",
                    redact(hash)
                )
            })?;
            Ok(TokenRecord {
                id: TokenRecord::id_for(&sha256),
                sha256,
                expires,
            })
        })
        .collect()
}

/// Show only a prefix of something that may be a misplaced secret.
fn redact(s: &str) -> String {
    if s.len() > 6 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(6).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s.to_string()
    }
}

fn parse_time(t: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(t)
        .map_err(|_| format!("expiry '{t}' is not an RFC 3339 time (e.g. 2026-12-31T00:00:00Z)"))
}

fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    parse_hex32(&s.replace(':', "")).ok_or_else(|| {
        format!("'{s}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    })
}

pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).ok()?;
    Some(out)
}

/// Lines on which each key is assigned (1-based), in order.
fn key_lines(text: &str) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        let l = l.strip_prefix("export ").unwrap_or(l);
        if l.starts_with('#') {
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                map.entry(k.to_string()).or_default().push(i + 1);
            }
        }
    }
    map
}

fn env_syntax_error(path: &Path, text: &str, e: dotenvy::Error) -> ConfigError {
    match e {
        dotenvy::Error::LineParse(line, col) => {
            let n = text
                .lines()
                .position(|l| l == line || l.contains(line.as_str()))
                .map(|i| i + 1)
                .unwrap_or(0);
            ConfigError::line(
                path,
                n,
                format!("env-file syntax error at column {}: expected KEY=value (quote values with spaces)", col + 1),
            )
        }
        other => ConfigError::file(path, format!("cannot parse: {other}")),
    }
}

#[cfg(test)]
mod tests;
