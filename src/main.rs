#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    clawgate::cli::main(clawgate::cli::Cli::parse())
}
