//! `clawgate member add|remove|list`: a member's life as commands. `add`
//! writes `members/NAME.env` (checked by the loader first, created
//! atomically, owned like the members directory, mode 0600) with a fresh
//! token printed once; `add` and `remove` print the gateway-config change
//! the member needs; `list` shows every member with its tokens' expiry and
//! last use.

mod gateway;
mod list;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Subcommand;

use super::{fsutil, token};
use crate::config::members::{self, Candidate};
use crate::config::Snapshot;
use clawgate_policy::identity::sha256;
use clawgate_policy::member::TokenRecord;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write members/NAME.env with a fresh token (printed once) and print
    /// the gateway-config change. Put NAME first: the list options take
    /// every value up to the next option.
    Add(AddArgs),
    /// Remove members/NAME.env and print the gateway-config change; the
    /// running proxy closes NAME's connections on its next reload.
    Remove {
        name: String,
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Every member: upstream, mode, origins, networks, and each token's
    /// expiry and last use (from the running proxy's admin listener).
    List(list::Args),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Member name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit.
    pub name: String,
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Browser origins (scheme://host[:port]); `none` for clients that send
    /// no Origin (CLI). Spaces or commas between entries.
    #[arg(long, required = true, num_args = 1..)]
    pub origins: Vec<String>,
    /// Networks the member connects from (e.g. 10.0.0.0/8 ::1/128).
    #[arg(long, required = true, num_args = 1..)]
    pub cidrs: Vec<String>,
    /// The upstream (from clawgate.toml); default: [members] default_upstream.
    #[arg(long)]
    pub upstream: Option<String>,
    /// Gateway scopes (e.g. operator.read operator.write).
    #[arg(long, num_args = 1..)]
    pub scopes: Vec<String>,
    /// The member's client certificate (PEM): its fingerprint is the
    /// credential, and no token is minted.
    #[arg(long, conflicts_with = "san")]
    pub cert: Option<PathBuf>,
    /// Certificate names (SANs, from certificates of the member CA) that
    /// identify the member; no token is minted.
    #[arg(long, num_args = 1..)]
    pub san: Vec<String>,
    /// Audit mode: would-be denials are logged and counted, not enforced.
    #[arg(long)]
    pub audit: bool,
    /// Make the token expire after this long (e.g. 90d).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["cert", "san"])]
    pub expires: Option<Duration>,
}

pub fn run(cmd: Command) -> ExitCode {
    let r = match cmd {
        Command::Add(a) => add(&a),
        Command::Remove { name, config } => remove(&name, &config),
        Command::List(a) => return list::run(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The config as it is, which a change starts from.
fn load(dir: &Path) -> Result<Snapshot, String> {
    crate::config::load(dir).map_err(|e| {
        format!(
            "{e}\nclawgate: nothing changed; fix the config first (clawgate check --config {})",
            dir.display()
        )
    })
}

/// Refuse what the loader would not take as a member name.
fn check_name(name: &str) -> Result<(), String> {
    if members::valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a member name: {}; nothing changed",
            name.escape_default(),
            members::NAME_RULE
        ))
    }
}

fn add(a: &AddArgs) -> Result<(), String> {
    check_name(&a.name)?;
    let before = load(&a.config)?;
    let path = before.members_dir.join(format!("{}.env", a.name));
    if before.member_by_name(&a.name).is_some() || path.symlink_metadata().is_ok() {
        return Err(format!(
            "member '{}' exists ({}); nothing changed (a new token: clawgate token rotate {})",
            a.name,
            path.display(),
            a.name
        ));
    }
    let token = match (&a.cert, a.san.is_empty()) {
        (None, true) => Some(token::generate()?),
        _ => None,
    };
    let cert = match &a.cert {
        Some(p) => Some(crate::net::tls::peer_cert(&crate::config::tls::first_cert(p)?).sha256),
        None => None,
    };
    let text = render(a, token.as_deref(), cert.as_ref())?;
    crate::config::load_with(
        &a.config,
        Some(Candidate {
            path: &path,
            text: &text,
        }),
    )
    .map_err(|e| {
        format!("{e}\nclawgate: nothing written (that is the file as add would have written it)")
    })?;
    fsutil::create_atomic(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e} (nothing written)", path.display()))?;
    let after = match crate::config::load(&a.config) {
        Ok(s) => s,
        Err(e) => {
            // Changed under us since the check: leave the config as it was.
            let _ = fsutil::remove(&path);
            return Err(format!("{e}\nclawgate: {} removed again", path.display()));
        }
    };
    if let Some(t) = &token {
        println!("token:    {t}");
        println!("token id: {}", TokenRecord::id_for(&sha256(t.as_bytes())));
        println!(
            "give the token to {} once, over a private channel; it cannot be shown again",
            a.name
        );
    }
    println!("{}: member {} added", path.display(), a.name);
    if let Some((_, m)) = after.member_by_name(&a.name) {
        gateway::print_change(&before, &after, &after.upstreams[m.upstream].name, &a.name);
    }
    println!("the running proxy takes it on its next reload (the file watch, or SIGHUP)");
    token::warn_if_unreadable(&a.config, &path);
    Ok(())
}

fn remove(name: &str, dir: &Path) -> Result<(), String> {
    check_name(name)?;
    let before = load(dir)?;
    let Some((_, m)) = before.member_by_name(name) else {
        let names: Vec<&str> = before.members.iter().map(|m| m.name.as_str()).collect();
        return Err(format!(
            "no member '{name}' in {}; nothing changed (members: {})",
            before.members_dir.display(),
            names.join(", ")
        ));
    };
    fsutil::remove(&m.file).map_err(|e| format!("{}: {e}", m.file.display()))?;
    println!("{}: removed", m.file.display());
    match crate::config::load(dir) {
        Ok(after) => {
            gateway::print_change(&before, &after, &before.upstreams[m.upstream].name, name)
        }
        Err(e) => eprintln!("clawgate: warning: the config does not load now: {e}"),
    }
    println!("the running proxy drops {name} on its next reload (the file watch, or SIGHUP) and closes {name}'s open connections then");
    Ok(())
}

/// The member file `add` writes. Values go in double quotes, where an env
/// file expands `$` and `\`: characters that could change a value or
/// start a new line are refused, so the file says exactly what was given.
fn render(a: &AddArgs, token: Option<&str>, cert: Option<&[u8; 32]>) -> Result<String, String> {
    let mut out = format!(
        "# {}: added by clawgate member add, {}\n",
        a.name,
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    let mut line = |key: &str, value: String| out.push_str(&format!("{key}=\"{value}\"\n"));
    if let Some(t) = token {
        let expires = a.expires.map(|d| SystemTime::now() + d);
        line("TOKEN_SHA256", token::entry(t, expires));
    }
    if let Some(c) = cert {
        line("CERT_SHA256", hex::encode(c));
    }
    if !a.san.is_empty() {
        line("CERT_SAN", list("--san", &a.san)?);
    }
    line("ORIGINS", list("--origins", &a.origins)?);
    line("EGRESS_CIDRS", list("--cidrs", &a.cidrs)?);
    if !a.scopes.is_empty() {
        line("SCOPES", list("--scopes", &a.scopes)?);
    }
    if let Some(u) = &a.upstream {
        line("UPSTREAM", list("--upstream", std::slice::from_ref(u))?);
    }
    line(
        "MODE",
        if a.audit { "audit" } else { "enforce" }.to_string(),
    );
    Ok(out)
}

/// The entries of a list option (each value split on spaces and commas,
/// as the loader splits them), joined by spaces.
fn list(option: &str, values: &[String]) -> Result<String, String> {
    let items: Vec<&str> = values.iter().flat_map(|v| members::split_list(v)).collect();
    if items.is_empty() {
        return Err(format!("{option}: no value given; nothing written"));
    }
    if let Some(bad) = items.iter().find(|i| {
        !i.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'\\$`#".contains(&b))
    }) {
        return Err(format!(
            "{option}: '{}' holds a character a member file value cannot (quotes, \\, $, `, #, or non-ASCII); nothing written",
            bad.escape_default()
        ));
    }
    Ok(items.join(" "))
}
