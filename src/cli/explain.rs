//! `clawgate explain`: what the proxy would decide for a credential,
//! origin and address, offline. The files are read here; the judging is
//! `clawgate_policy::explain`, the same identity and policy code.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;

use clawgate_policy::authorize::Diff;
use clawgate_policy::explain::{self, Caller, Question, Verdict};
use clawgate_policy::identity::{sha256, Presented};
use clawgate_policy::member::{Member, Mode, TokenRecord};
use clawgate_policy::Reason;

use crate::config::Snapshot;
use crate::deny;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// The bearer token to test.
    #[arg(long, group = "cred")]
    pub token: Option<String>,
    /// A file holding the token (first line).
    #[arg(long, group = "cred")]
    pub token_file: Option<PathBuf>,
    /// A client certificate (PEM).
    #[arg(long, group = "cred")]
    pub cert: Option<PathBuf>,
    /// Skip identification and test this member's policy.
    #[arg(long, group = "cred")]
    pub member: Option<String>,
    /// The Origin header; omit for a CLI client that sends none.
    #[arg(long)]
    pub origin: Option<String>,
    /// The client address.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// The request path (public routes are matched by prefix).
    #[arg(long, default_value = "/")]
    pub path: String,
    #[arg(long, default_value = "text")]
    pub format: String,
}

#[derive(Serialize)]
pub struct Decision {
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub member: Option<String>,
    pub upstream: Option<String>,
    pub mode: Option<&'static str>,
    pub diff: Option<Diff>,
    /// The presented token, when one identified the member (or was known
    /// but expired).
    pub token: Option<TokenInfo>,
}

#[derive(Serialize)]
pub struct TokenInfo {
    pub id: String,
    /// RFC 3339; null: never.
    pub expires: Option<String>,
    pub expired: bool,
}

impl TokenInfo {
    /// The record of `token` among `m`'s tokens, if it is one of them.
    fn of(m: &Member, token: &str, now: SystemTime) -> Option<TokenInfo> {
        let id = TokenRecord::id_for(&sha256(token.as_bytes()));
        let t = m.token(&id)?;
        Some(TokenInfo {
            id,
            expires: t
                .expires
                .map(|e| humantime::format_rfc3339_seconds(e).to_string()),
            expired: t.expired_at(now),
        })
    }
}

pub fn run(args: Args) -> ExitCode {
    match decide(&args) {
        Ok(d) => {
            if args.format == "json" {
                println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
            } else {
                print_text(&d);
            }
            if d.status < 400 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn decide(args: &Args) -> Result<Decision, String> {
    // A broken file of one member must not stop explaining the others.
    let loaded = crate::config::load_keeping(&args.config, None).map_err(|e| e.to_string())?;
    for f in &loaded.faults {
        eprintln!(
            "clawgate: warning: member {} left out: {}",
            f.member, f.error
        );
    }
    let snap = loaded.snapshot;
    // A public route is judged before any credential, so its files are
    // not read for one (an unreadable token file does not hide the answer).
    let public = snap.public_route(&args.path).is_some();
    let token = match (&args.token, &args.token_file) {
        _ if public => None,
        (Some(t), _) => Some(t.clone()),
        (_, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("{}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        _ => None,
    };
    let cert = match &args.cert {
        Some(p) if !public => Some(crate::net::tls::peer_cert(&crate::config::tls::first_cert(
            p,
        )?)),
        _ => None,
    };
    let caller = match &args.member {
        Some(name) => Caller::Member(name),
        None => Caller::Presented(Presented {
            cert: cert.as_ref(),
            bearer: token.as_deref().map(str::as_bytes),
            header_token: None,
        }),
    };
    let now = SystemTime::now();
    let question = Question {
        path: &args.path,
        caller,
        origin: args.origin.as_deref().map(str::as_bytes),
        ip: args.ip,
        now,
    };
    let mut d = decision(&snap, explain::decide(snap.rules(), &question), args)?;
    if let (Some(t), Some(name)) = (&token, &d.member) {
        if let Some((_, m)) = snap.member_by_name(name) {
            d.token = TokenInfo::of(m, t, now);
        }
    }
    Ok(d)
}

/// The verdict as the proxy would answer it: status, names, audit mode.
fn decision(snap: &Snapshot, verdict: Verdict, args: &Args) -> Result<Decision, String> {
    let upstream = |i: usize| Some(snap.upstreams[i].name.clone());
    Ok(match verdict {
        Verdict::NoSuchMember => {
            let name = args.member.as_deref().unwrap_or_default();
            return Err(format!("no member named '{name}'"));
        }
        Verdict::Public {
            upstream: u,
            allowed,
        } => Decision {
            status: if allowed.is_ok() { 200 } else { 403 },
            decision: if allowed.is_ok() { "public" } else { "deny" },
            reason: allowed.err().map(Reason::code),
            member: None,
            upstream: upstream(u),
            mode: None,
            diff: None,
            token: None,
        },
        Verdict::Unidentified { reason, member } => Decision {
            status: deny::status(reason).as_u16(),
            decision: "deny",
            reason: Some(reason.code()),
            member: member.map(|i| snap.members[i].name.clone()),
            upstream: None,
            mode: None,
            diff: None,
            token: None,
        },
        Verdict::Member { member, allowed } => {
            let m = &snap.members[member];
            let (status, decision, reason, diff) = match allowed {
                Ok(()) => (200, "allow", None, None),
                Err((reason, diff)) if m.mode == Mode::Audit => {
                    (200, "audit_would_deny", Some(reason), Some(diff))
                }
                Err((reason, diff)) => {
                    let status = deny::status(reason).as_u16();
                    (status, "deny", Some(reason), Some(diff))
                }
            };
            Decision {
                status,
                decision,
                reason: reason.map(Reason::code),
                member: Some(m.name.clone()),
                upstream: upstream(m.upstream),
                mode: Some(m.mode.as_str()),
                diff,
                token: None,
            }
        }
    })
}

fn print_text(d: &Decision) {
    println!("decision: {} ({})", d.decision, d.status);
    if let Some(r) = d.reason {
        println!("reason:   {r}");
    }
    if let Some(m) = &d.member {
        println!("member:   {m}");
    }
    if let Some(u) = &d.upstream {
        println!("upstream: {u}");
    }
    if let Some(t) = &d.token {
        let when = match (&t.expires, t.expired) {
            (None, _) => "never expires".to_string(),
            (Some(e), true) => format!("expired {e}"),
            (Some(e), false) => format!("expires {e}"),
        };
        println!("token:    {} {when}", t.id);
    }
    if let Some(diff) = &d.diff {
        println!(
            "origin:   presented {:?}",
            diff.origin.presented.as_deref().unwrap_or("(none)")
        );
        println!("          allowed   {}", diff.origin.allowed.join(", "));
        if let Some(n) = &diff.origin.nearest {
            println!("          nearest   {n}");
        }
        println!("          hint      {}", diff.origin.hint);
        println!("client ip: presented {}", diff.client_ip.presented);
        println!("           allowed   {}", diff.client_ip.allowed.join(", "));
    }
}
