//! `restore --verify`: a cold start of the restored config, in-process and
//! on ephemeral loopback ports (the config on disk is not rewritten; the
//! loaded snapshot's addresses are), `/readyz` asked on the admin listener,
//! each member judged by `explain`; RTO and RPO for the ticket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::manifest::Manifest;
use super::RestoreArgs;
use crate::cli::{explain, Format};

/// How long `/readyz` is polled for 200 (it needs one upstream reached).
const READY_WAIT: Duration = Duration::from_secs(3);

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub listen: Option<String>,
    pub admin: Option<String>,
    /// First line of the last `/readyz` answer, with its status.
    pub readyz: Option<String>,
    pub ready: bool,
    pub members: Vec<MemberCheck>,
    /// Seconds from the start of the restore to `/readyz` answering (200
    /// when `ready`).
    pub rto_seconds: Option<f64>,
    /// Seconds from the newest change in the backup to now.
    pub rpo_seconds: u64,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Serialize, Debug)]
pub struct MemberCheck {
    pub member: String,
    pub status: u16,
    pub decision: String,
    pub reason: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn cold_start(dir: &Path, m: &Manifest, started: Instant) -> Report {
    let mut r = Report {
        rpo_seconds: rpo(m),
        ..Report::default()
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            r.problems.push(format!("runtime: {e}"));
            return r;
        }
    };
    rt.block_on(start_and_probe(dir, started, &mut r));
    explain_members(dir, &mut r);
    r
}

fn rpo(m: &Manifest) -> u64 {
    let newest = humantime::parse_rfc3339(&m.newest_change).unwrap_or(UNIX_EPOCH);
    SystemTime::now()
        .duration_since(newest)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn start_and_probe(dir: &Path, started: Instant, r: &mut Report) {
    let mut snap = match crate::config::load(dir) {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(format!("load: {e}"));
            return;
        }
    };
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    snap.listen.addr = loopback;
    snap.admin.addr = loopback;
    // The drill must not append to the restored access log.
    snap.log.access = crate::config::AccessLog::Off;
    let server = match crate::runtime::server::Server::start_loaded(dir, snap).await {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(format!("start: {e}"));
            return;
        }
    };
    r.listen = Some(server.addr.to_string());
    r.admin = Some(server.admin_addr.to_string());
    let deadline = Instant::now() + READY_WAIT;
    loop {
        match readyz(server.admin_addr).await {
            Ok((status, line)) => {
                r.readyz = Some(format!("{status} {line}"));
                // The first answer, or the first 200: listeners up, or ready.
                if r.rto_seconds.is_none() || status == 200 {
                    r.rto_seconds = Some(started.elapsed().as_secs_f64());
                }
                if status == 200 {
                    r.ready = true;
                    break;
                }
            }
            Err(e) => r.readyz = Some(format!("no answer: {e}")),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match (&r.rto_seconds, r.ready) {
        (None, _) => r.problems.push("the admin listener did not answer /readyz".into()),
        (Some(_), false) => r.notes.push(
            "listeners bound and /readyz answered, but not ready: no upstream reached from here (the gateway is not running or not reachable); RTO is to its first answer".into(),
        ),
        _ => {}
    }
    server.shutdown(Duration::from_millis(200)).await;
}

/// Status and first line of the body of `GET /readyz`.
async fn readyz(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: clawgate\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok((status, body.lines().next().unwrap_or_default().to_string()))
}

fn explain_members(dir: &Path, r: &mut Report) {
    let snap = match crate::config::load(dir) {
        Ok(s) => s,
        Err(_) => return, // already a problem from the start
    };
    for m in &snap.members {
        let args = explain::Args {
            config: dir.to_path_buf(),
            token: None,
            token_file: None,
            cert: None,
            member: Some(m.name.clone()),
            origin: None,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            path: "/".into(),
            format: "json".into(),
        };
        match explain::decide(&args) {
            Ok(d) => r.members.push(MemberCheck {
                member: m.name.clone(),
                status: d.status,
                decision: d.decision.to_string(),
                reason: d.reason.map(str::to_string),
            }),
            Err(e) => r.problems.push(format!("explain --member {}: {e}", m.name)),
        }
    }
}

pub fn render(args: &RestoreArgs, m: &Manifest, r: Option<&Report>) -> String {
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "restored_to": args.to.display().to_string(),
                "files": m.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
                "newest_change": m.newest_change,
                "verify": r,
            });
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Format::Text | Format::Md => text(args, m, r, args.format == Format::Md),
    }
}

fn text(args: &RestoreArgs, m: &Manifest, r: Option<&Report>, md: bool) -> String {
    let b = if md { "- " } else { "  " };
    let mut o = String::new();
    if md {
        o.push_str("### Backup drill\n\n");
    }
    o.push_str(&format!(
        "restored {} files to {} (backup of {}, newest change {})\n",
        m.files.len(),
        args.to.display(),
        m.created,
        m.newest_change
    ));
    let Some(r) = r else { return o };
    o.push_str(&format!(
        "{b}listeners: {} (members), {} (admin), loopback ephemeral\n",
        r.listen.as_deref().unwrap_or("-"),
        r.admin.as_deref().unwrap_or("-")
    ));
    o.push_str(&format!(
        "{b}/readyz: {}\n",
        r.readyz.as_deref().unwrap_or("-")
    ));
    for c in &r.members {
        o.push_str(&format!(
            "{b}member {}: {} {}{}\n",
            c.member,
            c.status,
            c.decision,
            c.reason
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        ));
    }
    let rto = r
        .rto_seconds
        .map(|s| format!("{s:.2}s"))
        .unwrap_or_else(|| "-".into());
    o.push_str(&format!(
        "{b}RTO: {rto}{}\n",
        if r.ready {
            ""
        } else {
            " (not ready, see note)"
        }
    ));
    o.push_str(&format!(
        "{b}RPO: {}s (since the newest change in the backup)\n",
        r.rpo_seconds
    ));
    for n in &r.notes {
        o.push_str(&format!("{b}note: {n}\n"));
    }
    for p in &r.problems {
        o.push_str(&format!("{b}FAIL: {p}\n"));
    }
    o.push_str(&format!(
        "{b}verify: {}\n",
        if r.ok() { "ok" } else { "FAILED" }
    ));
    o
}
