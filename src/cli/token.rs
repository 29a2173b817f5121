//! `clawgate token new|rotate`: mint member tokens. The token is printed
//! once; only its SHA-256 goes into the member file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use base64::Engine;
use clap::Subcommand;

use super::accounts::Account;
use super::fsutil;
use clawgate_policy::identity::sha256;
use clawgate_policy::member::TokenRecord;

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
    let hash = hex::encode(sha256(token.as_bytes()));
    match expires {
        Some(t) => format!("{hash}@{}", humantime::format_rfc3339_seconds(t)),
        None => hash,
    }
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
        } => match rotate(&name, &config, overlap) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clawgate: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn rotate(name: &str, dir: &Path, overlap: Duration) -> Result<(), String> {
    let snap = crate::config::load(dir).map_err(|e| e.to_string())?;
    let (_, member) = snap
        .member_by_name(name)
        .ok_or_else(|| format!("no member '{name}' in {}", snap.members_dir.display()))?;
    let path = member.file.clone();
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let deadline = SystemTime::now() + overlap;
    let mut kept: Vec<String> = member
        .tokens
        .iter()
        .filter(|t| !t.expired_at(SystemTime::now()))
        .map(|t| {
            let until = t.expires.map_or(deadline, |e| e.min(deadline));
            format!(
                "{}@{}",
                hex::encode(t.sha256),
                humantime::format_rfc3339_seconds(until)
            )
        })
        .collect();
    let token = generate()?;
    kept.push(entry(&token, None));
    let line = format!("TOKEN_SHA256=\"{}\"", kept.join(" "));
    let mut replaced = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let t = t.strip_prefix("export ").unwrap_or(t);
            if t.starts_with("TOKEN_SHA256=") || t.starts_with("TOKEN_SHA256 =") {
                replaced = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        out.push(line);
    }
    // Atomic, and keeping owner/group/mode: run as root on the service
    // user's file, a plain rewrite would leave it root-owned and unreadable
    // by the proxy, refusing every reload.
    fsutil::write_atomic(&path, (out.join("\n") + "\n").as_bytes())
        .map_err(|e| format!("{}: {e} (the file is unchanged)", path.display()))?;
    println!("token:    {token}");
    println!(
        "token id: {}",
        TokenRecord::id_for(&sha256(token.as_bytes()))
    );
    println!(
        "{}: new token added; old tokens stop working at {}",
        path.display(),
        humantime::format_rfc3339_seconds(deadline)
    );
    println!("the running proxy takes it on its next reload (the file watch, or SIGHUP)");
    warn_if_unreadable(dir, &path);
    Ok(())
}

/// The file keeps its owner, but it may never have been readable by the
/// service user (the owner of `clawgate.toml`): say so, since the new token
/// would then get 401.
fn warn_if_unreadable(dir: &Path, file: &Path) {
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
