//! Command line: `main.rs` parses, this module dispatches. One file per
//! command; each returns the process exit code.

mod accounts;
mod admin_client;
pub mod backup;
pub mod check;
pub mod explain;
pub mod fsutil;
pub mod gateway_config;
pub mod member;
pub mod oncall;
pub mod plan;
pub mod probe;
pub mod run;
pub mod signoff;
pub mod suggest;
pub mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "clawgate",
    version,
    about = "Compartmentalising reverse proxy for a shared OpenClaw Gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of the commands that print data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For a terminal.
    Text,
    /// For CI and scripts (stable field names).
    Json,
    /// Markdown, to paste into a change ticket.
    Md,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve: load the config directory and proxy members to their upstreams.
    Run {
        /// Config directory (holds clawgate.toml and members/).
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Validate the config; print ports, members and the sign-off matrix.
    /// Exits 0 only when every row passes.
    Check(check::Args),
    /// The decision the running proxy would make for a credential, offline.
    Explain(explain::Args),
    /// Add, remove and list members (one members/NAME.env each).
    Member {
        #[command(subcommand)]
        command: member::Command,
    },
    /// Create, rotate, revoke and prune member tokens.
    Token {
        #[command(subcommand)]
        command: token::Command,
    },
    /// Probe the channel as a member: HTTP GET plus WebSocket round trip.
    /// Exits 0 when both pass.
    Probe(probe::Args),
    /// Print the OpenClaw gateway config block matching clawgate's members.
    GatewayConfig(gateway_config::Args),
    /// The on-call packet: check summary, upstream health, denial counts,
    /// last access-log lines. Exits 0 when everything is healthy.
    Oncall(oncall::Args),
    /// Propose the ORIGINS/EGRESS_CIDRS changes that would have allowed
    /// what was refused (audit mode and denials), read from the admin
    /// listener.
    Suggest(suggest::Args),
    /// The change ticket from one config to another: member and setting
    /// changes with old and new values, access logs replayed against
    /// both, the rollback. Exits 1 when an allowed request would be
    /// refused, 2 on error.
    Plan(plan::Args),
    /// Write a tar (0600) of the set that restores service, with a
    /// manifest (SHA-256, mode, owner, newest change).
    Backup(backup::BackupArgs),
    /// Restore a backup into a directory, checked against its manifest;
    /// --verify cold-starts it on loopback and reports RTO and RPO.
    Restore(backup::RestoreArgs),
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check(args) => check::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Member { command } => member::run(command),
        Command::Token { command } => token::run(command),
        Command::Probe(args) => probe::run(args),
        Command::GatewayConfig(args) => gateway_config::run(args),
        Command::Oncall(args) => oncall::run(args),
        Command::Suggest(args) => suggest::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Backup(args) => backup::run_backup(args),
        Command::Restore(args) => backup::restore::run_restore(args),
    }
}

/// A time as the commands print it: RFC 3339, whole seconds, UTC.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
