//! `clawgate run`: the main job.

use std::path::Path;
use std::process::ExitCode;

use crate::runtime::server::Server;

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
    let mut b = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    // A blocking thread (a config poll, a reload) goes away soon after its
    // work: between polls a steady process is one thread. A second thread
    // shares the file table, and the kernel then counts a reference on the
    // file of every system call (on loopback under load, about half a
    // percent of the proxy's CPU), which a one-thread process skips, as
    // nginx's and HAProxy's workers do.
    b.thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE);
    b
}

/// How long an idle blocking-pool thread waits for more work (tokio's
/// default is 10 s): far less than the time between config polls
/// (`reload::POLL_EVERY`), so each poll's thread has ended before the
/// next, at the cost of starting one per poll.
const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(20);

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
