//! `clawgate oncall`: the on-call packet in one output. The check summary,
//! each upstream's reachability and TCP connect latency, denial counts by
//! member and reason from the admin listener's `/metrics`, and the last N
//! access-log lines when the log is a file. Whatever cannot be reached is
//! said so, and the packet carries on.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::admin_client::{self, Sample};
use super::signoff::{self, Row, Status};
use super::Format;
use crate::config::{self, AccessLog};

/// Bound on each upstream connect and each admin request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Config directory (holds clawgate.toml and members/).
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// The admin listener's base URL [default: http://<[admin] addr>].
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// How many access-log lines to include.
    #[arg(long, default_value_t = 200)]
    pub lines: usize,
    /// Output: text for a terminal, json for tooling, md for a ticket.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Serialize)]
pub struct CheckSummary {
    pub pass: bool,
    pub passed: usize,
    pub failed: usize,
    pub failing: Vec<Row>,
}

#[derive(Serialize)]
pub struct UpstreamHealth {
    pub name: String,
    pub address: String,
    pub reachable: bool,
    pub connect_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct AdminStatus {
    pub url: String,
    pub reachable: bool,
    pub ready: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Count {
    pub member: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Serialize)]
pub struct ErrorCount {
    pub upstream: String,
    pub kind: String,
    pub count: u64,
}

#[derive(Serialize)]
pub struct LogTail {
    /// `file`, `stdout`, `off` or `unknown`.
    pub destination: &'static str,
    pub path: Option<String>,
    pub note: Option<String>,
    pub lines: Vec<String>,
}

#[derive(Serialize)]
pub struct Packet {
    pub generated_at: String,
    pub config_dir: String,
    /// Check passes, every upstream and the admin listener answer.
    pub healthy: bool,
    pub check: CheckSummary,
    pub upstreams: Vec<UpstreamHealth>,
    pub admin: AdminStatus,
    /// `clawgate_denials_total` by member and reason, since start.
    pub denials: Vec<Count>,
    /// `clawgate_audit_would_deny_total` by member and reason.
    pub audit_would_deny: Vec<Count>,
    /// `clawgate_upstream_errors_total` by upstream and kind.
    pub upstream_errors: Vec<ErrorCount>,
    pub access_log: LogTail,
}

pub fn run(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let packet = rt.block_on(collect(&args));
    let out = match args.format {
        Format::Json => serde_json::to_string_pretty(&packet).unwrap_or_default(),
        Format::Text => text(&packet),
        Format::Md => format!(
            "## clawgate on-call packet\n\n```\n{}\n```\n",
            text(&packet)
        ),
    };
    println!("{out}");
    if packet.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn collect(args: &Args) -> Packet {
    let report = signoff::build(&signoff::Options {
        dir: &args.config,
        gateway_config: None,
        upstream: None,
        user: None,
        now: SystemTime::now(),
    });
    let check = CheckSummary {
        pass: report.pass,
        passed: report.summary.passed,
        failed: report.summary.failed,
        failing: report
            .rows
            .iter()
            .filter(|r| r.status == Status::Fail)
            .cloned()
            .collect(),
    };
    let snap = config::load(&args.config).ok();

    let mut upstreams = Vec::new();
    if let Some(s) = &snap {
        for up in &s.upstreams {
            upstreams.push(connect(&up.name, up.authority.as_str()).await);
        }
    }

    let url = admin_client::admin_url(args.admin.as_deref(), &args.config);
    let mut admin = AdminStatus {
        url: url.clone(),
        reachable: false,
        ready: None,
        error: None,
    };
    let mut samples = Vec::new();
    match admin_client::get(&format!("{url}/metrics"), PROBE_TIMEOUT).await {
        Ok((200, body)) => {
            admin.reachable = true;
            samples = admin_client::parse_prometheus(&body);
        }
        Ok((status, _)) => {
            admin.error = Some(format!(
                "{url}/metrics answered {status}: is this clawgate's admin listener?"
            ))
        }
        Err(e) => {
            admin.error = Some(format!(
                "{e} (is clawgate running? pass --admin URL if it listens elsewhere)"
            ))
        }
    }
    if admin.reachable {
        if let Ok((_, body)) = admin_client::get(&format!("{url}/readyz"), PROBE_TIMEOUT).await {
            admin.ready = Some(body.trim().to_string());
        }
    }

    let access_log = match &snap {
        Some(s) => tail_log(&s.log.access, args.lines),
        None => LogTail {
            destination: "unknown",
            path: None,
            note: Some("the configuration did not load: log destination unknown".into()),
            lines: Vec::new(),
        },
    };

    let healthy = check.pass && admin.reachable && upstreams.iter().all(|u| u.reachable);
    Packet {
        generated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        config_dir: args.config.display().to_string(),
        healthy,
        check,
        upstreams,
        admin,
        denials: counts(&samples, "clawgate_denials_total", "member", "reason"),
        audit_would_deny: counts(
            &samples,
            "clawgate_audit_would_deny_total",
            "member",
            "reason",
        ),
        upstream_errors: counts(
            &samples,
            "clawgate_upstream_errors_total",
            "upstream",
            "kind",
        )
        .into_iter()
        .map(|c| ErrorCount {
            upstream: c.member,
            kind: c.reason,
            count: c.count,
        })
        .collect(),
        access_log,
    }
}

async fn connect(name: &str, addr: &str) -> UpstreamHealth {
    let t0 = Instant::now();
    let r = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
    let elapsed = t0.elapsed().as_secs_f64() * 1000.0;
    let (reachable, error) = match r {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(format!("{e}: is the gateway running?"))),
        Err(_) => (
            false,
            Some(format!(
                "no TCP answer within {}",
                humantime::format_duration(PROBE_TIMEOUT)
            )),
        ),
    };
    UpstreamHealth {
        name: name.into(),
        address: addr.into(),
        reachable,
        connect_ms: reachable.then_some(elapsed),
        error,
    }
}

/// Non-zero samples of a counter, by two labels, largest first.
fn counts(samples: &[Sample], name: &str, first: &str, second: &str) -> Vec<Count> {
    let mut out: Vec<Count> = samples
        .iter()
        .filter(|s| s.name == name && s.value > 0.0)
        .map(|s| Count {
            member: s.labels.get(first).cloned().unwrap_or_default(),
            reason: s.labels.get(second).cloned().unwrap_or_default(),
            count: s.value as u64,
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.member.cmp(&b.member))
            .then_with(|| a.reason.cmp(&b.reason))
    });
    out
}

fn tail_log(dest: &AccessLog, n: usize) -> LogTail {
    match dest {
        AccessLog::Off => LogTail {
            destination: "off",
            path: None,
            note: Some("[log] access = \"off\": there is no access log to show".into()),
            lines: Vec::new(),
        },
        AccessLog::Stdout => LogTail {
            destination: "stdout",
            path: None,
            note: Some(
                "the access log goes to stdout: read it where clawgate's output is kept (e.g. journalctl -u clawgate -n 200)".into(),
            ),
            lines: Vec::new(),
        },
        AccessLog::File(p) => {
            let mut note = None;
            let mut lines = match tail_file(p, n) {
                Ok(l) => l,
                Err(e) => {
                    note = Some(format!("{}: {e}", p.display()));
                    Vec::new()
                }
            };
            // Just rotated: take the rest from the previous file.
            if lines.len() < n {
                let older = p.with_extension("log.1");
                if let Ok(mut prev) = tail_file(&older, n - lines.len()) {
                    prev.append(&mut lines);
                    lines = prev;
                }
            }
            LogTail {
                destination: "file",
                path: Some(p.display().to_string()),
                note,
                lines,
            }
        }
    }
}

/// The last `n` lines of a file, reading backwards in chunks.
pub fn tail_file(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    const CHUNK: u64 = 64 * 1024;
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    while pos > 0 && buf.iter().filter(|b| **b == b'\n').count() <= n {
        let step = CHUNK.min(pos);
        pos -= step;
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0u8; step as usize];
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    // The first line may be partial when we stopped mid-file.
    let start = all.len().saturating_sub(n);
    Ok(all[start..].iter().map(|l| l.to_string()).collect())
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1} ms"))
        .unwrap_or_else(|| "-".into())
}

pub fn text(p: &Packet) -> String {
    let mut o = format!(
        "clawgate on-call packet: {} at {}: {}\n",
        p.config_dir,
        p.generated_at,
        if p.healthy {
            "HEALTHY"
        } else {
            "NEEDS ATTENTION"
        }
    );
    o.push_str(&format!(
        "\n== CHECK: {} ({} passed, {} failed)\n",
        if p.check.pass { "PASS" } else { "FAIL" },
        p.check.passed,
        p.check.failed
    ));
    for r in &p.check.failing {
        o.push_str(&format!(
            "  FAIL {} / {}: {}\n",
            r.section, r.check, r.evidence
        ));
    }
    o.push_str("\n== UPSTREAMS (TCP connect)\n");
    if p.upstreams.is_empty() {
        o.push_str("  unknown: the configuration did not load\n");
    }
    for u in &p.upstreams {
        o.push_str(&format!(
            "  {:<12} {:<22} {:<12} {}\n",
            u.name,
            u.address,
            if u.reachable {
                "reachable"
            } else {
                "UNREACHABLE"
            },
            if u.reachable {
                ms(u.connect_ms)
            } else {
                u.error.clone().unwrap_or_default()
            }
        ));
    }
    o.push_str(&format!("\n== ADMIN {}\n", p.admin.url));
    if p.admin.reachable {
        o.push_str(&format!(
            "  reachable; readyz: {}\n",
            p.admin.ready.as_deref().unwrap_or("-")
        ));
    } else {
        o.push_str(&format!(
            "  UNREACHABLE: {}; denial counts unavailable\n",
            p.admin.error.as_deref().unwrap_or("-")
        ));
    }
    let pairs = |v: &[Count]| -> Vec<(String, String, u64)> {
        v.iter()
            .map(|c| (c.member.clone(), c.reason.clone(), c.count))
            .collect()
    };
    let errors: Vec<(String, String, u64)> = p
        .upstream_errors
        .iter()
        .map(|c| (c.upstream.clone(), c.kind.clone(), c.count))
        .collect();
    for (title, list, head) in [
        (
            "DENIALS since start (clawgate_denials_total)",
            pairs(&p.denials),
            ("member", "reason"),
        ),
        (
            "AUDIT WOULD-DENY since start (clawgate_audit_would_deny_total)",
            pairs(&p.audit_would_deny),
            ("member", "reason"),
        ),
        (
            "UPSTREAM ERRORS since start (clawgate_upstream_errors_total)",
            errors,
            ("upstream", "kind"),
        ),
    ] {
        o.push_str(&format!("\n== {title}\n"));
        if !p.admin.reachable {
            o.push_str("  unavailable (admin listener unreachable)\n");
        } else if list.is_empty() {
            o.push_str("  none\n");
        } else {
            o.push_str(&format!("  {:<16} {:<22} count\n", head.0, head.1));
            for (a, b, n) in &list {
                o.push_str(&format!("  {a:<16} {b:<22} {n}\n"));
            }
        }
    }
    let l = &p.access_log;
    match &l.path {
        Some(path) => o.push_str(&format!(
            "\n== ACCESS LOG: last {} line(s) of {path}\n",
            l.lines.len()
        )),
        None => o.push_str(&format!("\n== ACCESS LOG ({})\n", l.destination)),
    }
    if let Some(n) = &l.note {
        o.push_str(&format!("  {n}\n"));
    }
    for line in &l.lines {
        o.push_str(line);
        o.push('\n');
    }
    o.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_returns_the_last_lines_across_chunks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("access.log");
        let mut f = File::create(&p).unwrap();
        for i in 0..20_000 {
            writeln!(f, "line {i} {}", "x".repeat(20)).unwrap();
        }
        drop(f);
        let t = tail_file(&p, 3).unwrap();
        assert_eq!(t.len(), 3);
        assert!(t[2].starts_with("line 19999 "));
        let t = tail_file(&p, 5000).unwrap();
        assert_eq!(t.len(), 5000);
        assert!(t[0].starts_with("line 15000 "));
        assert!(tail_file(&p, 0).unwrap().is_empty());
    }
}
