//! `clawgate member list`: every member as the config on disk has it, and
//! each token's last use as the running proxy counted it
//! (`clawgate_token_last_used_timestamp_seconds` on its admin listener),
//! when that listener answers and serves this config directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cli::admin_client::{self, Sample};
use crate::cli::{rfc3339, Format};
use crate::config::Snapshot;
use clawgate_policy::member::Member;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
const LAST_USED: &str = "clawgate_token_last_used_timestamp_seconds";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The running proxy's admin listener (default: the config's [admin] addr).
    #[arg(long)]
    pub admin: Option<String>,
}

#[derive(Serialize)]
pub struct Listing {
    pub config_dir: String,
    pub last_use: LastUse,
    pub members: Vec<Row>,
}

/// Where the last-use times came from; `available: false` and the reason
/// when they could not be had (every `last_used` is then null).
#[derive(Serialize)]
pub struct LastUse {
    pub admin: Option<String>,
    pub available: bool,
    pub error: Option<String>,
    /// Set when the proxy has not loaded the files as they are now (a
    /// reload pending or refused): members added since show no use.
    pub note: Option<String>,
}

#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub file: String,
    pub upstream: String,
    pub mode: &'static str,
    pub origins: Vec<String>,
    pub cidrs: Vec<String>,
    pub scopes: Vec<String>,
    pub tokens: Vec<TokenRow>,
    pub cert_sha256: Vec<String>,
    pub cert_san: Vec<String>,
}

#[derive(Serialize)]
pub struct TokenRow {
    pub id: String,
    /// RFC 3339; null: never.
    pub expires: Option<String>,
    pub expired: bool,
    /// RFC 3339; null: not used since the running proxy started (or
    /// `last_use` is not available).
    pub last_used: Option<String>,
}

pub fn run(args: &Args) -> ExitCode {
    let snap = match crate::config::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clawgate: {e}");
            return ExitCode::from(2);
        }
    };
    let url = admin_client::admin_url(args.admin.as_deref(), Some(&snap));
    let (last_use, samples) = fetch_last_use(url, &snap);
    if let Some(e) = &last_use.error {
        eprintln!("clawgate: last use not available: {e}");
    }
    if let Some(n) = &last_use.note {
        eprintln!("clawgate: note: {n}");
    }
    let now = SystemTime::now();
    let listing = Listing {
        config_dir: snap.dir.display().to_string(),
        members: snap
            .members
            .iter()
            .map(|m| row(&snap, m, &samples, now))
            .collect(),
        last_use,
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&listing).unwrap_or_default()
        ),
        Format::Text => print!("{}", text(&listing)),
        Format::Md => print!("{}", markdown(&listing)),
    }
    ExitCode::SUCCESS
}

fn row(snap: &Snapshot, m: &Member, samples: &[Sample], now: SystemTime) -> Row {
    let last_used = |id: &str| {
        admin_client::newest(samples, LAST_USED, &[("member", &m.name), ("token_id", id)])
            .map(admin_client::at)
    };
    Row {
        name: m.name.clone(),
        file: m.file.display().to_string(),
        upstream: snap.upstreams[m.upstream].name.clone(),
        mode: m.mode.as_str(),
        origins: m.origins.patterns().iter().map(|p| p.to_string()).collect(),
        cidrs: m.egress.nets().iter().map(|n| n.to_string()).collect(),
        scopes: m.scopes.clone(),
        tokens: m
            .tokens
            .iter()
            .map(|t| TokenRow {
                id: t.id.clone(),
                expires: t.expires.map(rfc3339),
                expired: t.expired_at(now),
                last_used: last_used(&t.id),
            })
            .collect(),
        cert_sha256: m.cert_sha256.iter().map(hex::encode).collect(),
        cert_san: m.cert_san.clone(),
    }
}

/// The admin listener's samples, when it answers and serves this config
/// directory (another instance's counts are not this one's).
fn fetch_last_use(url: Option<String>, snap: &Snapshot) -> (LastUse, Vec<Sample>) {
    let mut lu = LastUse {
        admin: url.clone(),
        available: false,
        error: None,
        note: None,
    };
    let Some(url) = url else {
        return (lu, Vec::new());
    };
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| {
            rt.block_on(async {
                let ready = admin_client::get(&format!("{url}/readyz"), ADMIN_TIMEOUT).await?;
                let metrics = admin_client::get(&format!("{url}/metrics"), ADMIN_TIMEOUT).await?;
                Ok::<_, String>((ready.1, metrics))
            })
        });
    let ours = std::fs::canonicalize(&snap.dir).unwrap_or_else(|_| snap.dir.clone());
    match fetched {
        Err(e) => {
            lu.error = Some(format!(
                "{e} (is clawgate running? --admin URL if it listens elsewhere)"
            ))
        }
        Ok((_, (status, _))) if status != 200 => {
            lu.error = Some(format!("{url}/metrics answered {status}"))
        }
        Ok((ready, (_, body))) => {
            let r = admin_client::Readyz::parse(&ready);
            let served = r.config_dir;
            if served.as_deref() == Some(&*ours.to_string_lossy()) {
                lu.available = true;
                if r.fingerprint.as_deref() != Some(snap.fingerprint.as_str()) {
                    lu.note = Some(format!(
                        "the proxy at {url} has not loaded these files as they are now (a reload pending, or refused: see its log)"
                    ));
                }
                return (lu, admin_client::parse_prometheus(&body));
            }
            lu.error = Some(format!(
                "the instance at {url} serves {}, not {}",
                served.as_deref().unwrap_or("an unnamed config directory"),
                ours.display()
            ));
        }
    }
    (lu, Vec::new())
}

fn last_used_text(l: &Listing, t: &TokenRow) -> String {
    match (&t.last_used, l.last_use.available) {
        (Some(when), _) => when.clone(),
        (None, true) => "not since the proxy started".into(),
        (None, false) => "unknown".into(),
    }
}

fn expires_text(t: &TokenRow) -> String {
    match (&t.expires, t.expired) {
        (None, _) => "never".into(),
        (Some(e), true) => format!("{e} (expired)"),
        (Some(e), false) => e.clone(),
    }
}

fn text(l: &Listing) -> String {
    let mut out = String::new();
    for m in &l.members {
        out.push_str(&format!(
            "{}  upstream {}  mode {}\n  origins  {}\n  cidrs    {}\n",
            m.name,
            m.upstream,
            m.mode,
            m.origins.join(" "),
            m.cidrs.join(" ")
        ));
        for t in &m.tokens {
            out.push_str(&format!(
                "  token    {}  expires {}  last used {}\n",
                t.id,
                expires_text(t),
                last_used_text(l, t)
            ));
        }
        for c in &m.cert_sha256 {
            out.push_str(&format!("  cert     {c}\n"));
        }
        if !m.cert_san.is_empty() {
            out.push_str(&format!("  cert san {}\n", m.cert_san.join(" ")));
        }
    }
    if l.members.is_empty() {
        out.push_str("no members\n");
    }
    out
}

fn markdown(l: &Listing) -> String {
    let rows: Vec<Vec<String>> = l
        .members
        .iter()
        .flat_map(|m| {
            let creds: Vec<(String, String, String)> = if m.tokens.is_empty() {
                vec![("certificate".into(), "-".into(), "-".into())]
            } else {
                m.tokens
                    .iter()
                    .map(|t| (t.id.clone(), expires_text(t), last_used_text(l, t)))
                    .collect()
            };
            creds.into_iter().map(move |(id, exp, used)| {
                vec![
                    m.name.clone(),
                    m.upstream.clone(),
                    m.mode.to_string(),
                    m.origins.join(" "),
                    m.cidrs.join(" "),
                    id,
                    exp,
                    used,
                ]
            })
        })
        .collect();
    format!(
        "## clawgate members: `{}`\n\n{}",
        l.config_dir,
        crate::cli::check::md_table(
            &[
                "member",
                "upstream",
                "mode",
                "origins",
                "cidrs",
                "credential",
                "expires",
                "last used"
            ],
            &rows
        )
    )
}
