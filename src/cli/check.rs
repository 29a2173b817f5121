//! `clawgate check`: validate everything `run` would load and print the
//! port/bind table, the env-file map and the sign-off matrix. Exit 0 only
//! when every row passes. With `--config` given more than once (prod and
//! staging on one host) each stack is reported as alone, followed by the
//! cross-stack rows of [`super::signoff::stacks`] and one verdict.
//!
//! The report itself is built in [`super::signoff`]; this file renders it
//! as text (a terminal), JSON (CI; stable field names) or Markdown (a
//! change ticket).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use super::signoff::stacks::{self, Stack};
use super::signoff::{self, Port, Report, Row, Status};
use super::Format;
use crate::config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Config directory (holds clawgate.toml and members/). Give it more
    /// than once (prod and staging on one host) to also check that the
    /// stacks share no port, no file and no credential.
    #[arg(long, default_value = "config")]
    pub config: Vec<PathBuf>,
    /// Output: text for a terminal, json for CI, md for a change ticket.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// An OpenClaw gateway config (JSON or JSON5) to compare with what
    /// `clawgate gateway-config` would generate.
    #[arg(long, value_name = "FILE")]
    pub gateway_config: Option<PathBuf>,
    /// Which upstream's gateway --gateway-config is (when there are several).
    #[arg(long, requires = "gateway_config")]
    pub upstream: Option<String>,
    /// The user the proxy runs as, for the "member files readable" row
    /// [default: the owner of clawgate.toml].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let now = SystemTime::now();
    let reports: Vec<Report> = args
        .config
        .iter()
        .map(|dir| {
            signoff::build(&signoff::Options {
                dir,
                gateway_config: args.gateway_config.as_deref(),
                upstream: args.upstream.as_deref(),
                user: args.user.as_deref(),
                now,
            })
        })
        .collect();
    let (out, pass) = match reports.as_slice() {
        [report] => (one(report, args.format), report.pass),
        _ => several(&args.config, &reports, args.format, now),
    };
    println!("{out}");
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn one(report: &Report, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Format::Md => markdown(report),
        Format::Text => text(report),
    }
}

/// Each stack's report as with one `--config`, then the cross-stack rows
/// and one verdict over everything.
fn several(
    dirs: &[PathBuf],
    reports: &[Report],
    format: Format,
    now: SystemTime,
) -> (String, bool) {
    let snaps: Vec<_> = dirs.iter().map(|d| config::load(d).ok()).collect();
    let stacks: Vec<Stack<'_>> = dirs
        .iter()
        .zip(&snaps)
        .map(|(d, s)| Stack {
            label: d.display().to_string(),
            snap: s.as_ref(),
        })
        .collect();
    let cross = stacks::rows(&stacks, now);
    let cross_failed = cross.iter().filter(|r| r.status == Status::Fail).count();
    let pass = cross_failed == 0 && reports.iter().all(|r| r.pass);
    let failed = cross_failed + reports.iter().map(|r| r.summary.failed).sum::<usize>();
    let total = cross.len() + reports.iter().map(|r| r.summary.rows).sum::<usize>();
    let result = if pass {
        format!("RESULT: PASS ({} stacks, {total} rows)", reports.len())
    } else {
        format!("RESULT: FAIL ({failed} of {total} rows failed)")
    };
    let cells: Vec<Vec<String>> = cross.iter().map(row_cells).collect();
    let out = match format {
        Format::Json => serde_json::to_string_pretty(&serde_json::json!({
            "pass": pass,
            "stacks": reports,
            "cross_stack": cross,
        }))
        .unwrap_or_default(),
        Format::Md => {
            let mut out: Vec<String> = reports.iter().map(markdown).collect();
            out.push(format!(
                "## Cross-stack checks\n\n**{result}**\n\n{}",
                md_table(&ROW_HEAD, &cells)
            ));
            out.join("\n")
        }
        Format::Text => {
            let mut out: Vec<String> = reports.iter().map(text).collect();
            out.push(format!(
                "CROSS-STACK\n{}\n{result}",
                table(&ROW_HEAD, &cells)
            ));
            out.join("\n\n")
        }
    };
    (out, pass)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

fn port_cells(p: &Port) -> Vec<String> {
    vec![
        p.role.to_string(),
        p.name.clone(),
        p.address.clone(),
        p.port.to_string(),
        yes_no(p.tls).to_string(),
        p.reach.to_string(),
        dash(p.conflicts.join("; ")),
    ]
}

const PORT_HEAD: [&str; 7] = [
    "role",
    "name",
    "address",
    "port",
    "tls",
    "reach",
    "conflicts",
];
const MEMBER_HEAD: [&str; 9] = [
    "member",
    "file",
    "perm",
    "identities",
    "origins",
    "cidrs",
    "upstream",
    "scopes",
    "mode",
];
const ROW_HEAD: [&str; 4] = ["status", "section", "check", "evidence"];

fn member_rows(r: &Report) -> Vec<Vec<String>> {
    r.members
        .iter()
        .map(|m| {
            let mut ids: Vec<String> = m
                .tokens
                .iter()
                .map(|t| match &t.expires {
                    Some(e) => format!("{} (until {e}, {})", t.id, t.state),
                    None => format!("{} (no expiry)", t.id),
                })
                .collect();
            ids.extend(m.cert_sha256.iter().map(|c| format!("cert sha256 {c}")));
            ids.extend(m.cert_san.iter().map(|s| format!("cert SAN {s}")));
            vec![
                m.name.clone(),
                m.file.clone(),
                m.permissions.clone(),
                dash(ids.join(", ")),
                dash(m.origins.join(" ")),
                dash(m.cidrs.join(" ")),
                m.upstream.clone(),
                dash(m.scopes.join(" ")),
                m.mode.to_string(),
            ]
        })
        .collect()
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
    }
}

fn row_cells(row: &Row) -> Vec<String> {
    vec![
        status_word(row.status).to_string(),
        row.section.to_string(),
        row.check.to_string(),
        row.evidence.clone(),
    ]
}

fn matrix_rows(r: &Report) -> Vec<Vec<String>> {
    r.rows.iter().map(row_cells).collect()
}

/// Left-aligned columns; the last column is not padded.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let head: Vec<String> = head.iter().take(n).map(|h| h.to_uppercase()).collect();
    let mut widths = vec![0; n];
    for r in std::iter::once(&head).chain(rows) {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn verdict(r: &Report) -> String {
    if r.pass && r.summary.warned > 0 {
        format!(
            "RESULT: PASS ({} rows, {} warning(s))",
            r.summary.rows, r.summary.warned
        )
    } else if r.pass {
        format!("RESULT: PASS ({} rows)", r.summary.rows)
    } else {
        format!(
            "RESULT: FAIL ({} of {} rows failed)",
            r.summary.failed, r.summary.rows
        )
    }
}

pub fn text(r: &Report) -> String {
    let mut out = format!("clawgate check: {} at {}\n\n", r.config_dir, r.generated_at);
    if let Some(e) = &r.load_error {
        let place = match (e.line, &e.key) {
            (Some(l), _) => format!("{}:{l}", e.file),
            (None, Some(k)) => format!("{} ({k})", e.file),
            _ => e.file.clone(),
        };
        out.push_str(&format!("CONFIG ERROR  {place}: {}\n\n", e.reason));
    }
    if !r.ports.is_empty() {
        out.push_str("PORTS\n");
        out.push_str(&table(
            &PORT_HEAD,
            &r.ports.iter().map(port_cells).collect::<Vec<_>>(),
        ));
        out.push('\n');
    }
    if !r.members.is_empty() {
        out.push_str("MEMBERS\n");
        out.push_str(&table(&MEMBER_HEAD, &member_rows(r)));
        out.push('\n');
    }
    out.push_str("SIGN-OFF\n");
    out.push_str(&table(&ROW_HEAD, &matrix_rows(r)));
    out.push('\n');
    out.push_str(&verdict(r));
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn md_table(head: &[&str], rows: &[Vec<String>]) -> String {
    let n = rows.first().map(Vec::len).unwrap_or(head.len());
    let head: Vec<&str> = head.iter().copied().take(n).collect();
    let mut out = format!("| {} |\n", head.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "## clawgate sign-off: `{}`\n\nGenerated {} by `clawgate check --format md`. **{}**\n\n",
        r.config_dir,
        r.generated_at,
        verdict(r)
    );
    if let Some(e) = &r.load_error {
        let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
        out.push_str(&format!(
            "> **Configuration refused:** `{}{line}`: {}\n\n",
            e.file,
            md_cell(&e.reason)
        ));
    }
    out.push_str("### Sign-off matrix\n\n");
    let rows: Vec<Vec<String>> = matrix_rows(r)
        .into_iter()
        .map(|mut c| {
            c[0] = match c[0].as_str() {
                "PASS" => "✅ pass".into(),
                "WARN" => "⚠️ warn".into(),
                _ => "❌ fail".into(),
            };
            c
        })
        .collect();
    out.push_str(&md_table(&ROW_HEAD, &rows));
    if !r.ports.is_empty() {
        out.push_str("\n### Ports and binds\n\n");
        out.push_str(&md_table(
            &PORT_HEAD,
            &r.ports.iter().map(port_cells).collect::<Vec<_>>(),
        ));
    }
    if !r.members.is_empty() {
        out.push_str("\n### Members (env-file map)\n\n");
        out.push_str(&md_table(&MEMBER_HEAD, &member_rows(r)));
    }
    out.push_str("\n### Backup set\n\n");
    for f in &r.backup {
        let mark = if f.present { "present" } else { "**missing**" };
        out.push_str(&format!("- `{}` ({mark})\n", f.path));
    }
    out.push_str("\nReviewer: ______  Date: ______\n");
    out
}
