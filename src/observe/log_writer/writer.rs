//! The writer thread of a [`LineBatch`], and when it runs.
//!
//! The writer thread runs only while there are lines: the first push
//! after a quiet spell starts it, and it ends after [`IDLE_LOOKS`] looks
//! that found nothing. A process with a second thread shares its file
//! table, and the kernel then counts a reference on the file of every
//! system call the proxy makes (see `cli::run::runtime_builder`); a
//! writer kept for a denial seen once an hour would cost every request
//! that.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::thread::Thread;
use std::time::Duration;

use super::{LineBatch, FLUSH_BUSY, FLUSH_EVERY};

/// The writer's nice value: below the proxy's threads, not so far below
/// that a flood's lines outrun it (see the parent module's text).
const WRITER_NICE: i32 = 5;
/// Looks in a row that found nothing (at [`FLUSH_EVERY`], 1 s) after
/// which the writer thread ends; the next line starts another.
pub const IDLE_LOOKS: u32 = 10;

/// Whether a batch's writer thread runs (kept with the pending lines,
/// under their lock).
pub(super) enum Writer {
    /// No thread: the next push starts one.
    Idle,
    /// Started; its handle, for wake-ups, once it has run.
    Running(Option<Thread>),
    /// No thread will run (none could start, or the batch was made
    /// without one): lines wait for [`LineBatch::write_out`].
    Off,
}

impl LineBatch {
    pub(super) fn start_writer(&self) {
        let batch = self.me.clone();
        let started = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || write_while_busy(batch));
        if let Err(e) = started {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .writer = Writer::Off;
            tracing::warn!(
                "{} thread did not start ({e}); its lines are written at shutdown",
                self.name
            );
        }
    }
}

/// The writer thread: writes `batch` out on its clock until it has been
/// idle for [`IDLE_LOOKS`] looks, or the batch is gone.
fn write_while_busy(batch: Weak<LineBatch>) {
    // Best effort: at the default priority it still works.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), WRITER_NICE);
    match batch.upgrade() {
        Some(b) => {
            b.pending.lock().unwrap_or_else(|e| e.into_inner()).writer =
                Writer::Running(Some(std::thread::current()));
        }
        None => return,
    }
    let mut wait = FLUSH_EVERY;
    let mut idle = 0;
    loop {
        if !wait.is_zero() {
            // Woken early by a burst (see `LineBatch::push`), or now and
            // then for nothing, which costs one look.
            std::thread::park_timeout(wait);
        }
        let Some(batch) = batch.upgrade() else { return };
        batch.woken.store(false, Ordering::Relaxed);
        let wrote = batch.write_out();
        idle = if wrote { 0 } else { idle + 1 };
        if idle >= IDLE_LOOKS {
            // Under the lines' lock: a push now either finds this writer
            // still running (and its line is seen here) or finds none.
            let mut pending = batch.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.lines.is_empty() {
                pending.writer = Writer::Idle;
                return;
            }
        }
        wait = if !wrote {
            FLUSH_EVERY
        } else if batch.behind() {
            Duration::ZERO
        } else {
            FLUSH_BUSY
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Shared;
    use super::*;

    /// This process's threads named `name` (Linux: /proc/self/task).
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + FLUSH_EVERY * (IDLE_LOOKS + 30);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_writer_thread_runs_while_there_are_lines_and_ends_with_the_batch() {
        const NAME: &str = "test-logwriter1";
        let sink = Shared::default();
        let batch = LineBatch::with_writer(
            Box::new(sink.clone()),
            1 << 20,
            crate::observe::log_writer::Extras::default(),
            NAME,
        );
        assert_eq!(threads_named(NAME), 0, "no thread before the first line");
        batch.push(b"one\n");
        wait_for("never written", || !sink.0.lock().unwrap().is_empty());
        assert_eq!(&sink.0.lock().unwrap()[..], b"one\n");
        assert_eq!(threads_named(NAME), 1);
        wait_for("the writer outlived a quiet spell", || {
            threads_named(NAME) == 0
        });
        // The next line starts another.
        batch.push(b"two\n");
        wait_for("the second line was never written", || {
            sink.0.lock().unwrap().len() == 8
        });
        assert_eq!(&sink.0.lock().unwrap()[..], b"one\ntwo\n");
        assert_eq!(threads_named(NAME), 1);
        drop(batch);
        wait_for("the writer outlived its batch", || threads_named(NAME) == 0);
    }
}
