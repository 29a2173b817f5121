//! Config reload: read and validate the whole directory, then swap one
//! `ArcSwap` so every new request sees the new snapshot, and re-check open
//! tunnels against it. A bad file keeps the old snapshot serving.
//!
//! Triggers: SIGHUP, and any change under the config directory (polled,
//! so it works on every filesystem and inside containers where inotify
//! does not cross bind mounts; two quiet polls debounce an editor's
//! multi-step save). A poll stats every file: every [`POLL_EVERY`] for a
//! small directory, less often for a large one, so polling costs at most
//! about 1/[`POLL_BUDGET`] of a CPU however many member files there are.
//!
//! Every poll runs on a blocking-pool thread, never on the runtime: a
//! `stat` can block for as long as the filesystem does (a hung network
//! mount: indefinitely), and on the runtime that would stall every
//! connection. The thread ends soon after its poll (`cli::run`), so a
//! steady process is one thread between polls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{self, ConfigError};
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub members: usize,
    /// Open tunnels closed because the new snapshot no longer allows them.
    pub revoked: usize,
}

pub fn apply(state: &State, dir: &Path) -> Result<Outcome, ConfigError> {
    let old = state.snapshot();
    match config::load_keeping(dir, Some(&old)) {
        Ok(config::Loaded {
            mut snapshot,
            faults,
        }) => {
            snapshot.generation = old.generation + 1;
            let changes = config::changes::between(&old, &snapshot);
            log_changes(&changes, dir);
            log_faults(&faults);
            let members = snapshot.members.len();
            let expiries = config::certs::expiries(snapshot.listen.tls.as_ref());
            state.config.store(Arc::new(snapshot));
            state.metrics.set_cert_expiries(&expiries);
            let revoked = state.tunnels.revoke_against(&state.snapshot());
            let result = if faults.is_empty() { "ok" } else { "partial" };
            let m = &state.metrics;
            m.member_files_refused.set(faults.len() as i64);
            m.config_reloads.with_label_values(&[result]).inc();
            tracing::info!(members, revoked, refused = faults.len(), "config reloaded");
            Ok(Outcome { members, revoked })
        }
        Err(e) => {
            state
                .metrics
                .config_reloads
                .with_label_values(&["error"])
                .inc();
            tracing::error!(file = %e.file.display(), line = e.line_number().unwrap_or(0), "config reload refused, old config stays: {e}");
            Err(e)
        }
    }
}

/// One error line per refused member file: where, why, and what serves.
fn log_faults(faults: &[config::MemberFault]) {
    for f in faults {
        let e = &f.error;
        let serving = if f.kept {
            "its last good file stays in force"
        } else {
            "the member is not added until the file loads"
        };
        tracing::error!(
            member = %f.member,
            file = %e.file.display(),
            line = e.line_number().unwrap_or(0),
            "member file refused, {serving}; the rest of the reload applied: {e}"
        );
    }
}

/// Names what the reload changed (never a value: see `config::changes`)
/// and warns about each setting that waits for a restart.
fn log_changes(c: &config::changes::Changes, dir: &Path) {
    if c.members_touched() {
        let (added, removed, changed) = c.summary();
        tracing::info!(%added, %removed, %changed, "members changed by reload");
    }
    for setting in &c.needs_restart {
        tracing::warn!(
            setting,
            "{setting} changed in {}; it applies at the next restart, the running value stays",
            dir.display()
        );
    }
}

/// Every file under a directory: name, size, mtime.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The [`Fingerprint`] of `dir`.
fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            // The access log may live under the config dir; it is not config.
            if e.file_name().to_string_lossy().contains(".log") {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                if out.len() < 10_000 {
                    stack.push(e.path());
                }
            } else {
                use std::os::unix::fs::MetadataExt;
                out.push((
                    e.path(),
                    meta.len() ^ u64::from(meta.mode()),
                    meta.modified().ok(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Aborts the watcher task when dropped.
pub struct WatchGuard(tokio::task::JoinHandle<()>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`apply`] on a blocking-pool thread. Reading and validating the
/// directory is file I/O and parsing, long for many members; on a runtime
/// worker it would stall every connection that worker serves.
pub async fn apply_off_runtime(state: Arc<State>, dir: PathBuf) -> Result<Outcome, ConfigError> {
    let at = dir.clone();
    match tokio::task::spawn_blocking(move || apply(&state, &dir)).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down: the old snapshot stays, as for
        // any reload that does not complete.
        Err(_) => Err(ConfigError::file(
            &at,
            "reload not run: clawgate is shutting down",
        )),
    }
}

/// How often a small config directory is polled for changes.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// A poll may take at most this fraction (1/N) of the time between polls.
const POLL_BUDGET: u32 = 50;
/// However large the directory, a change is seen within this.
const POLL_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// [`fingerprint`] and how long it took (the poll's pace and place
/// follow from it).
fn timed_fingerprint(dir: &Path) -> (Fingerprint, Duration) {
    let started = std::time::Instant::now();
    (fingerprint(dir), started.elapsed())
}

/// The wait before the next poll, after one that took `took`.
fn interval_after(took: Duration) -> Duration {
    (took * POLL_BUDGET).clamp(POLL_EVERY, POLL_AT_MOST_EVERY)
}

/// Reload when anything under `dir` changes.
pub fn watch_dir(state: Arc<State>, dir: PathBuf) -> WatchGuard {
    // Taken before returning, so no change after this call is missed.
    let (mut last, took) = timed_fingerprint(&dir);
    WatchGuard(tokio::spawn(async move {
        let mut pending = false;
        let mut every = interval_after(took);
        loop {
            tokio::time::sleep(every).await;
            // A stat per file (10,000 member files: ~10,000 calls), off the
            // runtime: see the module's doc.
            let d = dir.clone();
            let (now, took) = match tokio::task::spawn_blocking(move || timed_fingerprint(&d)).await
            {
                Ok(polled) => polled,
                Err(_) => continue,
            };
            every = interval_after(took);
            if now != last {
                last = now;
                pending = true;
                continue;
            }
            if pending {
                pending = false;
                let _ = apply_off_runtime(state.clone(), dir.clone()).await;
            }
        }
    }))
}
