//! `clawgate explain`: what the proxy would decide for a credential,
//! origin and address, offline, through the same identity and policy code.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;

use crate::deny::Reason;
use crate::identity::{IdentifyError, Presented, Via};
use crate::policy::{self, Diff};

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
    fn of(m: &crate::member::Member, id: &str, now: SystemTime) -> Option<TokenInfo> {
        let t = m.token(id)?;
        Some(TokenInfo {
            id: t.id.clone(),
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
    let origin = args.origin.as_deref().map(str::as_bytes);
    let ip = crate::cidr::canonical(args.ip);
    if let Some(route) = snap.public_route(&args.path) {
        let ok = route.sources.contains(ip);
        return Ok(Decision {
            status: if ok { 200 } else { 403 },
            decision: if ok { "public" } else { "deny" },
            reason: (!ok).then_some(Reason::CidrNotAllowed.code()),
            member: None,
            upstream: Some(snap.upstreams[route.upstream].name.clone()),
            mode: None,
            diff: None,
            token: None,
        });
    }
    let token = presented_token(args)?;
    let cert = match &args.cert {
        Some(p) => Some(crate::net::tls::peer_cert(&crate::config::tls::first_cert(
            p,
        )?)),
        None => None,
    };
    let now = SystemTime::now();
    let mut token_info = None;
    let member_id = if let Some(name) = &args.member {
        snap.member_by_name(name)
            .map(|(i, _)| i)
            .ok_or_else(|| format!("no member named '{name}'"))?
    } else {
        let presented = Presented {
            cert: cert.as_ref(),
            bearer: token.as_deref().map(str::as_bytes),
            header_token: None,
        };
        match snap.credentials.identify(&presented, now) {
            Ok(id) => {
                if let Via::Token { token_id } = &id.via {
                    token_info = TokenInfo::of(&snap.members[id.member], token_id, now);
                }
                id.member
            }
            Err(e) => return Ok(refused(&snap, e, now)),
        }
    };
    let m = &snap.members[member_id];
    let verdict = policy::evaluate(m, origin, ip);
    let upstream = Some(snap.upstreams[m.upstream].name.clone());
    Ok(match verdict {
        Ok(()) => Decision {
            status: 200,
            decision: "allow",
            reason: None,
            member: Some(m.name.clone()),
            upstream,
            mode: Some(m.mode.as_str()),
            diff: None,
            token: token_info,
        },
        Err(reason) => {
            let audit = m.mode == crate::member::Mode::Audit;
            Decision {
                status: if audit { 200 } else { reason.status().as_u16() },
                decision: if audit { "audit_would_deny" } else { "deny" },
                reason: Some(reason.code()),
                member: Some(m.name.clone()),
                upstream,
                mode: Some(m.mode.as_str()),
                diff: Some(policy::explain(m, origin, ip)),
                token: token_info,
            }
        }
    })
}

/// The token from `--token`, or the first line of `--token-file`.
fn presented_token(args: &Args) -> Result<Option<String>, String> {
    Ok(match (&args.token, &args.token_file) {
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
    })
}

/// The decision when nobody could be identified.
fn refused(snap: &crate::config::Snapshot, e: IdentifyError, now: SystemTime) -> Decision {
    let (reason, member, token) = match e {
        IdentifyError::NoCredentials => (Reason::NoCredentials, None, None),
        IdentifyError::BadToken => (Reason::BadToken, None, None),
        IdentifyError::UnknownCert => (Reason::UnknownCert, None, None),
        IdentifyError::TokenExpired { member, token_id } => {
            let m = &snap.members[member];
            (
                Reason::TokenExpired,
                Some(m.name.clone()),
                TokenInfo::of(m, &token_id, now),
            )
        }
    };
    Decision {
        status: reason.status().as_u16(),
        decision: "deny",
        reason: Some(reason.code()),
        member,
        upstream: None,
        mode: None,
        diff: None,
        token,
    }
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
