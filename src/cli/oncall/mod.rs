//! `clawgate oncall`: the on-call packet in one output. The check summary,
//! each upstream's reachability and TCP connect latency, denial counts by
//! member and reason from the admin listener's `/metrics`, and the last N
//! access-log lines when the log is a file. Whatever cannot be reached is
//! said so, and the packet carries on.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::admin_client::{self, Sample};
use super::signoff::{self, Row, Status};
use super::Format;
use crate::config;

mod channels;
mod logs;
mod text;

pub use logs::tail_file;
use logs::tail_log;
pub use text::text;

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
    /// `None`: not contacted (the config did not load and no `--admin`).
    pub url: Option<String>,
    pub reachable: bool,
    /// `/readyz`'s state line.
    pub ready: Option<String>,
    /// The config directory and fingerprint the instance says it serves.
    pub config_dir: Option<String>,
    pub config_fingerprint: Option<String>,
    /// This config's fingerprint (`None` when it did not load).
    pub expected_fingerprint: Option<String>,
    /// The instance serves the config on disk: `None` when that cannot be
    /// told (not reached, or this config did not load).
    pub serves_this_config: Option<bool>,
    /// Loaded settings that wait for a restart (listen/admin address, log
    /// sinks): what a restart would change.
    pub restart_pending: Vec<String>,
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
    /// Why the configuration did not load, when it did not.
    pub config_error: Option<String>,
    /// Check passes, every upstream answers, and the admin listener answers
    /// and serves this config.
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
    /// Per member: last allowed, last denial, WebSockets, tokens.
    pub channels: Vec<channels::Channel>,
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
    if let Some(e) = &packet.config_error {
        // Before the packet, on stderr too, so no format hides it.
        eprintln!("{e}");
    }
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
    let (snap, config_error) = match config::load(&args.config) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            None,
            Some(admin_client::load_failed(
                &args.config,
                &e,
                args.admin.is_some(),
            )),
        ),
    };

    let mut upstreams = Vec::new();
    if let Some(s) = &snap {
        for up in &s.upstreams {
            upstreams.push(connect(&up.name, up.authority.as_str()).await);
        }
    }

    let url = admin_client::admin_url(args.admin.as_deref(), snap.as_ref());
    let (admin, samples) = admin_status(url, snap.as_ref().map(|s| s.fingerprint.as_str())).await;

    let access_log = match &snap {
        Some(s) => tail_log(&s.log.access, args.lines),
        None => LogTail {
            destination: "unknown",
            path: None,
            note: Some("the configuration did not load: log destination unknown".into()),
            lines: Vec::new(),
        },
    };

    let healthy = check.pass
        && admin.reachable
        && admin.serves_this_config == Some(true)
        && upstreams.iter().all(|u| u.reachable);
    Packet {
        generated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        config_dir: args.config.display().to_string(),
        config_error,
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
        channels: snap
            .as_ref()
            .map(|s| channels::channels(s, &samples, SystemTime::now()))
            .unwrap_or_default(),
        access_log,
    }
}

/// Ask the admin listener at `url` for its metrics and which config it
/// serves, compared with `expected` (this config's fingerprint). The
/// samples are dropped when it serves another config: its denials are not
/// this instance's.
async fn admin_status(url: Option<String>, expected: Option<&str>) -> (AdminStatus, Vec<Sample>) {
    let mut admin = AdminStatus {
        url: url.clone(),
        reachable: false,
        ready: None,
        config_dir: None,
        config_fingerprint: None,
        expected_fingerprint: expected.map(str::to_string),
        serves_this_config: None,
        restart_pending: Vec::new(),
        error: None,
    };
    let Some(url) = url else {
        admin.error = Some(
            "not contacted: the configuration did not load, so its [admin] addr is unknown (pass --admin URL)".into(),
        );
        return (admin, Vec::new());
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
    if !admin.reachable {
        return (admin, samples);
    }
    if let Ok((_, body)) = admin_client::get(&format!("{url}/readyz"), PROBE_TIMEOUT).await {
        let r = admin_client::Readyz::parse(&body);
        admin.ready = Some(r.state);
        admin.config_dir = r.config_dir;
        admin.config_fingerprint = r.fingerprint;
        admin.restart_pending = r.restart_pending;
    }
    let Some(expected) = expected else {
        return (admin, samples);
    };
    let same = admin.config_fingerprint.as_deref() == Some(expected);
    admin.serves_this_config = Some(same);
    if !same {
        admin.error = Some(match &admin.config_fingerprint {
            Some(fp) => format!(
                "the instance at {url} serves a different config (fingerprint {fp} of {} vs {expected} of this one): another clawgate answers there, or it has not loaded these files as they are now (a refused reload? see its log)",
                admin.config_dir.as_deref().unwrap_or("an unnamed directory")
            ),
            None => format!(
                "the instance at {url} does not say which config it serves (/readyz has no config_fingerprint): not clawgate, or an older one"
            ),
        });
        samples.clear();
    }
    (admin, samples)
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

#[cfg(test)]
mod tests;
