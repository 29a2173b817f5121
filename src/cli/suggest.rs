//! `clawgate suggest`: for members in `MODE=audit` and for denials, the
//! env-file change that would have allowed what was refused, with counts,
//! for a human to review. Read from the running proxy's admin listener
//! (`/suggest`); nothing is written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::admin_client;
use crate::observe::suggest::{Count, MemberReport, Report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The admin listener's base URL [default: http://<[admin] addr> from --config].
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// Only this member.
    #[arg(long, value_name = "NAME")]
    pub member: Option<String>,
    /// Config directory, used only to find the admin listener.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Output: text (env-file lines), or json for tooling.
    #[arg(long, value_enum, default_value_t = super::Format::Text)]
    pub format: super::Format,
}

pub fn run(args: Args) -> ExitCode {
    // With --admin the config is not needed; without, its address comes
    // from the config, and a config that does not load is said, not
    // replaced by a default address another instance may answer on.
    let snap = match &args.admin {
        Some(_) => None,
        None => match crate::config::load(&args.config) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("{}", admin_client::load_failed(&args.config, &e, false));
                return ExitCode::from(2);
            }
        },
    };
    let Some(url) = admin_client::admin_url(args.admin.as_deref(), snap.as_ref()) else {
        return ExitCode::from(2);
    };
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
    let fetched = rt.block_on(admin_client::get(
        &format!("{url}/suggest"),
        Duration::from_secs(5),
    ));
    let body = match fetched {
        Ok((200, body)) => body,
        Ok((status, _)) => {
            eprintln!("clawgate: {url}/suggest answered {status}: is this clawgate's admin listener (and a clawgate new enough to serve /suggest)?");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("clawgate: {e}; is clawgate running? pass --admin URL (its [admin] addr)");
            return ExitCode::from(2);
        }
    };
    let mut report: Report = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clawgate: {url}/suggest is not a suggestion report: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(name) = &args.member {
        report.members.retain(|m| &m.member == name);
    }
    match args.format {
        super::Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        super::Format::Md => print!(
            "## clawgate suggest\n\n```\n{}```\n",
            text(&report, args.member.as_deref())
        ),
        super::Format::Text => print!("{}", text(&report, args.member.as_deref())),
    }
    ExitCode::SUCCESS
}

fn counted(list: &[Count]) -> String {
    list.iter()
        .map(|c| {
            format!(
                "{} ({} request{})",
                c.value,
                c.count,
                if c.count == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn joined(current: &[String], add: &[Count]) -> String {
    current
        .iter()
        .cloned()
        .chain(add.iter().map(|c| c.value.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn member_text(m: &MemberReport) -> String {
    let mut o = format!(
        "# {} (MODE={}): {} refused request(s) recorded since start\n# file: {}\n",
        m.member, m.mode, m.recorded, m.file
    );
    if !m.origins.is_empty() {
        o.push_str(&format!("# ORIGINS would need: {}\n", counted(&m.origins)));
        o.push_str(&format!(
            "ORIGINS=\"{}\"\n",
            joined(&m.current_origins, &m.origins)
        ));
    }
    if !m.networks.is_empty() {
        o.push_str(&format!(
            "# EGRESS_CIDRS would need: {}\n",
            counted(&m.networks)
        ));
        o.push_str(&format!(
            "EGRESS_CIDRS=\"{}\"\n",
            joined(&m.current_cidrs, &m.networks)
        ));
    }
    if m.unusable_origins > 0 {
        o.push_str(&format!(
            "# {} request(s) sent an Origin no ORIGINS entry can allow (null, a path, malformed): fix the client\n",
            m.unusable_origins
        ));
    }
    if m.dropped > 0 {
        o.push_str(&format!(
            "# {} more distinct value(s) were not kept (cap reached): review the access log too\n",
            m.dropped
        ));
    }
    if m.mode == "audit" {
        o.push_str("# then set MODE=enforce when nothing unexpected is left\n");
    }
    o
}

pub fn text(r: &Report, member: Option<&str>) -> String {
    if r.members.is_empty() {
        return match member {
            Some(m) => format!("nothing to suggest for {m}: no refused origin or network that the current config still refuses\n"),
            None => "nothing to suggest: no refused origin or network that the current config still refuses\n".into(),
        };
    }
    let mut o = String::from(
        "# Proposed env-file changes (review before applying; widen nothing you cannot explain)\n\n",
    );
    for m in &r.members {
        o.push_str(&member_text(m));
        o.push('\n');
    }
    o
}
