//! `clawgate token new|rotate|revoke|prune`: mint member tokens and drop
//! them. A token is printed once; only its SHA-256 goes into the member
//! file. Every rewrite of a member file is checked by the loader first and
//! written atomically, keeping owner, group and mode.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use base64::Engine;
use clap::Subcommand;

use super::accounts::Account;
use super::fsutil;
use crate::config::members::Candidate;
use clawgate_policy::identity::sha256;
use clawgate_policy::member::{Member, TokenRecord};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a fresh token once, its token ID and the TOKEN_SHA256 line.
    New {
        /// Member name (the member file is members/NAME.env).
        name: String,
        /// Make the token expire after this long (e.g. 90d, 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// Add a new token to NAME's file and let the old ones expire after
    /// the overlap window (the dual-write rotation).
    Rotate {
        name: String,
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// How long the old tokens keep working.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        overlap: Duration,
    },
    /// Remove one token (by its token ID, as `member list` shows it) from
    /// NAME's file; the proxy refuses it from its next reload on.
    Revoke {
        name: String,
        /// The token ID (`tok_` + 12 hex digits).
        token_id: String,
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Drop the hashes of expired tokens from NAME's file (every member's
    /// without NAME).
    Prune {
        name: Option<String>,
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
}

/// A new random token: `cg_` + 32 random bytes, base64url.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(format!(
        "cg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The member-file entry for `token`: hex hash with optional expiry.
pub fn entry(token: &str, expires: Option<SystemTime>) -> String {
    hash_entry(&sha256(token.as_bytes()), expires)
}

/// The member-file entry of a token already in a file.
pub fn record_entry(t: &TokenRecord) -> String {
    hash_entry(&t.sha256, t.expires)
}

fn hash_entry(sha256: &[u8; 32], expires: Option<SystemTime>) -> String {
    let hash = hex::encode(sha256);
    match expires {
        Some(t) => format!("{hash}@{}", humantime::format_rfc3339_seconds(t)),
        None => hash,
    }
}

/// When a token stops working, for people: an RFC 3339 time or "never".
pub fn expiry_text(expires: Option<SystemTime>) -> String {
    expires.map_or_else(|| "never".to_string(), super::rfc3339)
}

pub fn run(cmd: Command) -> ExitCode {
    match cmd {
        Command::New { name, expires } => {
            let token = match generate() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("clawgate: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let exp = expires.map(|d| SystemTime::now() + d);
            let digest = sha256(token.as_bytes());
            println!("token:    {token}");
            println!("token id: {}", TokenRecord::id_for(&digest));
            println!("add to members/{name}.env (the token itself is never stored):");
            println!("TOKEN_SHA256={}", entry(&token, exp));
            println!(
                "give the token to {name} once, over a private channel; it cannot be shown again"
            );
            ExitCode::SUCCESS
        }
        Command::Rotate {
            name,
            config,
            overlap,
        } => done(rotate(&name, &config, overlap)),
        Command::Revoke {
            name,
            token_id,
            config,
        } => done(revoke(&name, &token_id, &config)),
        Command::Prune { name, config } => done(prune(name.as_deref(), &config)),
    }
}

fn done(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The loaded config and member `name` in it.
fn member<'s>(snap: &'s crate::config::Snapshot, name: &str) -> Result<&'s Member, String> {
    snap.member_by_name(name)
        .map(|(_, m)| m)
        .ok_or_else(|| format!("no member '{name}' in {}", snap.members_dir.display()))
}

fn rotate(name: &str, dir: &Path, overlap: Duration) -> Result<(), String> {
    let snap = crate::config::load(dir).map_err(|e| e.to_string())?;
    let member = member(&snap, name)?;
    let deadline = SystemTime::now() + overlap;
    let mut kept: Vec<String> = member
        .tokens
        .iter()
        .filter(|t| !t.expired_at(SystemTime::now()))
        .map(|t| {
            hash_entry(
                &t.sha256,
                Some(t.expires.map_or(deadline, |e| e.min(deadline))),
            )
        })
        .collect();
    let token = generate()?;
    kept.push(entry(&token, None));
    rewrite_tokens(dir, member, &kept)?;
    println!("token:    {token}");
    println!(
        "token id: {}",
        TokenRecord::id_for(&sha256(token.as_bytes()))
    );
    println!(
        "{}: new token added; old tokens stop working at {}",
        member.file.display(),
        humantime::format_rfc3339_seconds(deadline)
    );
    println!("the running proxy takes it on its next reload (the file watch, or SIGHUP)");
    warn_if_unreadable(dir, &member.file);
    Ok(())
}

fn revoke(name: &str, id: &str, dir: &Path) -> Result<(), String> {
    let snap = crate::config::load(dir).map_err(|e| e.to_string())?;
    let member = member(&snap, name)?;
    if member.token(id).is_none() {
        let ids: Vec<&str> = member.tokens.iter().map(|t| t.id.as_str()).collect();
        return Err(format!(
            "{name} has no token {id}; its tokens: {} (nothing changed)",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        ));
    }
    let kept: Vec<String> = member
        .tokens
        .iter()
        .filter(|t| t.id != id)
        .map(record_entry)
        .collect();
    if kept.is_empty() && member.cert_sha256.is_empty() && member.cert_san.is_empty() {
        return Err(format!(
            "{id} is {name}'s only credential, and a member file without one does not load (nothing changed): give {name} a new token first (clawgate token rotate {name} --overlap 0s), or remove the member (clawgate member remove {name})"
        ));
    }
    rewrite_tokens(dir, member, &kept)?;
    println!("{}: {id} revoked", member.file.display());
    println!("the running proxy refuses it from its next reload (the file watch, or SIGHUP) and closes the connections it opened");
    warn_if_unreadable(dir, &member.file);
    Ok(())
}

fn prune(name: Option<&str>, dir: &Path) -> Result<(), String> {
    let snap = crate::config::load(dir).map_err(|e| e.to_string())?;
    let members: Vec<&Member> = match name {
        Some(n) => vec![member(&snap, n)?],
        None => snap.members.iter().collect(),
    };
    let now = SystemTime::now();
    let mut pruned = 0;
    for m in members {
        let (expired, live): (Vec<&TokenRecord>, Vec<&TokenRecord>) =
            m.tokens.iter().partition(|t| t.expired_at(now));
        if expired.is_empty() {
            continue;
        }
        let ids: Vec<&str> = expired.iter().map(|t| t.id.as_str()).collect();
        if live.is_empty() && m.cert_sha256.is_empty() && m.cert_san.is_empty() {
            eprintln!(
                "clawgate: warning: every token of {} has expired ({}); kept, since a member file without a credential does not load: clawgate token rotate {} (a new token) or clawgate member remove {}",
                m.name,
                ids.join(", "),
                m.name,
                m.name
            );
            continue;
        }
        let kept: Vec<String> = live.iter().map(|t| record_entry(t)).collect();
        rewrite_tokens(dir, m, &kept)?;
        println!("{}: dropped expired {}", m.file.display(), ids.join(", "));
        pruned += expired.len();
    }
    if pruned == 0 {
        println!("no expired token to drop");
    }
    Ok(())
}

/// Replace `member`'s `TOKEN_SHA256` line with `entries` (no entries: no
/// line), every other line kept as it is. The loader checks the new text
/// before it is written.
fn rewrite_tokens(dir: &Path, member: &Member, entries: &[String]) -> Result<(), String> {
    let path = &member.file;
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = (!entries.is_empty()).then(|| format!("TOKEN_SHA256=\"{}\"", entries.join(" ")));
    let mut placed = false;
    let mut out: Vec<&str> = Vec::new();
    for l in text.lines() {
        let t = l.trim_start();
        let t = t.strip_prefix("export ").unwrap_or(t);
        if t.starts_with("TOKEN_SHA256=") || t.starts_with("TOKEN_SHA256 =") {
            if let (Some(new), false) = (&line, placed) {
                out.push(new);
            }
            placed = true;
        } else {
            out.push(l);
        }
    }
    if let (Some(new), false) = (&line, placed) {
        out.push(new);
    }
    let new = out.join("\n") + "\n";
    crate::config::load_with(dir, Some(Candidate { path, text: &new }))
        .map_err(|e| format!("{e} (the file is unchanged)"))?;
    // Atomic, and keeping owner/group/mode: run as root on the service
    // user's file, a plain rewrite would leave it root-owned and unreadable
    // by the proxy, refusing every reload.
    fsutil::write_atomic(path, new.as_bytes())
        .map_err(|e| format!("{}: {e} (the file is unchanged)", path.display()))
}

/// The file keeps its owner, but it may never have been readable by the
/// service user (the owner of `clawgate.toml`): say so, since the new token
/// would then get 401.
pub(super) fn warn_if_unreadable(dir: &Path, file: &Path) {
    let (Ok(account), Ok(meta)) = (
        Account::owner_of(&dir.join(crate::config::BASE_FILE)),
        fs::metadata(file),
    ) else {
        return;
    };
    if !account.can_read(&meta) {
        eprintln!(
            "clawgate: warning: {} is not readable by {} (the owner of clawgate.toml): the proxy will refuse to reload; run chown {} {}",
            file.display(),
            account.name,
            account.name,
            file.display()
        );
    }
}
