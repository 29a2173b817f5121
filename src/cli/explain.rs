//! `clawgate explain`: what the proxy would decide for a credential,
//! origin and address, offline, through the same identity and policy code.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;

use clawgate_policy::authorize::{self, Diff};
use clawgate_policy::identity::{IdentifyError, Presented};
use clawgate_policy::Reason;

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
    let snap = crate::config::load(&args.config).map_err(|e| e.to_string())?;
    let origin = args.origin.as_deref().map(str::as_bytes);
    let ip = clawgate_policy::cidr::canonical(args.ip);
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
        });
    }
    let token = match (&args.token, &args.token_file) {
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
        Some(p) => Some(crate::tls::pem_fingerprint(p)?),
        None => None,
    };
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
        match snap.credentials.identify(&presented, SystemTime::now()) {
            Ok(id) => id.member,
            Err(e) => {
                let (reason, member) = match e {
                    IdentifyError::NoCredentials => (Reason::NoCredentials, None),
                    IdentifyError::BadToken => (Reason::BadToken, None),
                    IdentifyError::UnknownCert => (Reason::UnknownCert, None),
                    IdentifyError::TokenExpired { member, .. } => (
                        Reason::TokenExpired,
                        Some(snap.members[member].name.clone()),
                    ),
                };
                return Ok(Decision {
                    status: crate::deny::status(reason).as_u16(),
                    decision: "deny",
                    reason: Some(reason.code()),
                    member,
                    upstream: None,
                    mode: None,
                    diff: None,
                });
            }
        }
    };
    let m = &snap.members[member_id];
    let verdict = authorize::evaluate(m, origin, ip);
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
        },
        Err(reason) => {
            let audit = m.mode == clawgate_policy::member::Mode::Audit;
            Decision {
                status: if audit {
                    200
                } else {
                    crate::deny::status(reason).as_u16()
                },
                decision: if audit { "audit_would_deny" } else { "deny" },
                reason: Some(reason.code()),
                member: Some(m.name.clone()),
                upstream,
                mode: Some(m.mode.as_str()),
                diff: Some(authorize::explain(m, origin, ip)),
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
