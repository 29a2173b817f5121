//! Command line: `main.rs` parses, this module dispatches. One file per
//! command; each returns the process exit code.

pub mod explain;
pub mod run;
pub mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve: load the config directory and proxy members to their upstreams.
    Run {
        /// Config directory (holds clawgate.toml and members/).
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// The decision the running proxy would make for a credential, offline.
    Explain(explain::Args),
    /// Create and rotate member tokens.
    Token {
        #[command(subcommand)]
        command: token::Command,
    },
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Explain(args) => explain::run(args),
        Command::Token { command } => token::run(command),
    }
}
