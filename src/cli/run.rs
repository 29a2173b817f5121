//! `clawgate run`: the main job.

use std::path::Path;
use std::process::ExitCode;

use crate::server::Server;

pub fn run(dir: &Path) -> ExitCode {
    let level = crate::config::load(dir)
        .map(|s| s.log.level.clone())
        .unwrap_or_else(|_| "info".into());
    init_tracing(&level);
    let rt = match runtime_builder().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let server = match Server::start(dir).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("clawgate: {e}");
                return ExitCode::from(2);
            }
        };
        match server.run_until_signalled().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clawgate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// One CPU (a pinned or cgroup-limited deployment, as nginx runs with one
/// worker): a current-thread runtime, which skips the work-stealing
/// scheduler's cross-thread bookkeeping on every wake-up. More CPUs: one
/// worker per CPU.
fn runtime_builder() -> tokio::runtime::Builder {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
}

/// Diagnostics go to stderr; stdout carries the access log.
pub fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
