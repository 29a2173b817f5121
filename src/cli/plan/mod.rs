//! `clawgate plan`: the change ticket for going from one config directory
//! to another. Both are loaded as `run` loads them (strictly: a bad file
//! is an error, exit 2); the members and settings that differ are listed
//! with old and new values, access logs are replayed against both, and
//! the rollback is spelled out. Exit 1 when some request that was
//! allowed would (or may) now be refused, so CI can gate on it.

mod diff;
mod render;
mod replay;
mod rollback;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::Format;
use crate::config::{self, Snapshot};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config before the change: a directory, or `git:REV` for the
    /// config directory as of that git revision.
    #[arg(long)]
    pub from: String,
    /// The config after the change.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// An access log (JSON lines) to replay against both configs;
    /// repeatable.
    #[arg(long = "access-log")]
    pub access_log: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// The whole plan, as `--format json` prints it.
#[derive(Serialize, Debug)]
pub struct Plan {
    pub from: String,
    pub config: String,
    pub members: Vec<diff::MemberChange>,
    pub settings: Vec<diff::SettingChange>,
    /// Present when access logs were given.
    pub replay: Option<replay::Report>,
    pub rollback: rollback::Rollback,
    pub warnings: Vec<String>,
    /// Requests that were allowed and would or may now be refused.
    pub lost_requests: usize,
}

pub fn run(args: Args) -> ExitCode {
    match plan(&args) {
        Ok(p) => {
            match args.format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default())
                }
                Format::Text => print!("{}", render::text(&p)),
                Format::Md => print!("{}", render::md(&p)),
            }
            if p.lost_requests > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("clawgate plan: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn plan(args: &Args) -> Result<Plan, String> {
    let old_dir = source::old_dir(&args.from, &args.config)?;
    let old = load(&old_dir, "--from")?;
    let new = config::load(&args.config).map_err(|e| format!("--config: {e}"))?;
    let members = diff::members(&old, &new);
    let settings = diff::settings(&old, &new)?;
    let replay = match args.access_log.is_empty() {
        true => None,
        false => Some(replay::run(&args.access_log, &old, &new)?),
    };
    let rollback = rollback::of(&args.from, &old_dir, &args.config, &old, &new, &members);
    let warnings = rollback::warnings(&members, &settings);
    Ok(Plan {
        from: args.from.clone(),
        config: args.config.display().to_string(),
        lost_requests: replay.as_ref().map_or(0, replay::Report::lost),
        members,
        settings,
        replay,
        rollback,
        warnings,
    })
}

/// The old config; errors name the file as the user knows it (the
/// revision's path, not the temporary copy's).
fn load(old: &source::OldDir, flag: &str) -> Result<Snapshot, String> {
    config::load(&old.path).map_err(|e| {
        let msg = e.to_string();
        match &old.rev {
            Some(rev) => {
                let tmp = old.path.display().to_string();
                format!(
                    "{flag} git:{rev}: {}",
                    msg.replace(&tmp, &format!("{rev}:."))
                )
            }
            None => format!("{flag}: {msg}"),
        }
    })
}
