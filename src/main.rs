#![forbid(unsafe_code)]

use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    clawgate::cli::main(clawgate::cli::Cli::parse())
}
