//! Log lines written off the request path, for clawgate's two hand-made
//! logs (the access log, the policy-denial line on stderr), and the
//! timestamps they carry.
//!
//! A request appends its finished line to a [`LineBatch`]: a lock and a
//! copy into one buffer, no allocation once the buffer has grown to a
//! batch, no system call. A writer thread hands the batch to its sink
//! every [`FLUSH_BUSY`] while lines keep coming (every [`FLUSH_EVERY`]
//! when they don't, at once while it is behind), so a line reaches the
//! file at most [`FLUSH_EVERY`] after its request ended. A sink that
//! stops draining never stalls a request: past the batch's bound, lines
//! are dropped and counted.
//!
//! The writer is not woken by requests: waking it per line or per batch
//! is a futex call from the proxy's thread, and the writer, just woken,
//! takes the core from it at once. The one exception is a burst that
//! fills a quarter of the batch's bound before the writer's next look
//! (see [`LineBatch::push`]): that wakes it, once. It wakes on its own clock and
//! runs at a lower priority (nice 5), so it writes when the proxy's
//! thread waits for the network, or in the share the scheduler gives it.
//! That share must cover a flood of denial lines on the proxy's one core,
//! which nice 10 does not. The proxy's thread still takes the core back
//! at each of its wake-ups, so the writer's turns stay short.
//!
//! The writer thread runs only while there are lines (the `writer`
//! module says when, and why). A flood of one line, differing only in
//! time and ID, is folded as it is queued (the `fold` module).
mod fold;
mod timestamp;
mod writer;

pub use fold::{FoldLine, Run, MAX_FOLDED};
pub use timestamp::Timestamp;
pub use writer::IDLE_LOOKS;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use writer::Writer;

/// How long a line may wait in the buffer when lines are few.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... and while they keep coming (the last look found some).
pub const FLUSH_BUSY: Duration = Duration::from_millis(10);
/// The buffers' starting size (they grow, and are kept, under a flood).
const PENDING_CAPACITY: usize = 256 * 1024;
/// The most handed to one `write(2)`: see [`whole_lines`].
const WRITE_CHUNK: usize = 16 * 1024;
/// How long the writer writes before it yields the core: see
/// [`LineBatch::write_out`].
const WRITE_SLICE: Duration = Duration::from_micros(200);
/// Pending after a write, this much means the writer is behind: it
/// writes again at once instead of sleeping.
const BEHIND: usize = 4 * WRITE_CHUNK;

/// What a batch does after a write got through, when lines were dropped
/// since the last one: the denial log says so in its own stream, the
/// access log leaves it to its metric.
pub type DropNotice = fn(&mut dyn Write, u64);

/// What a batch's stream adds to plain lines.
#[derive(Clone, Copy, Default)]
pub struct Extras {
    /// Says, in the stream, how many lines were dropped.
    pub notice: Option<DropNotice>,
    /// Writes the line that names a run's repeats
    /// ([`LineBatch::push_or_fold`]).
    pub fold: Option<FoldLine>,
}

/// Lines waiting for their sink.
pub struct LineBatch {
    pending: Mutex<Pending>,
    /// The sink, with the last batch's buffer (emptied, for the next
    /// swap). One lock, so lines from the writer thread and from
    /// [`LineBatch::write_out`] at shutdown never interleave.
    sink: Mutex<Sink>,
    /// Past this many pending bytes, new lines are dropped.
    max_pending: usize,
    dropped: AtomicU64,
    extras: Extras,
    /// A push has woken the writer since its last look.
    woken: AtomicBool,
    /// This batch, for the writer thread a push starts (which holds it
    /// weakly, so it ends with the batch), and that thread's name.
    me: Weak<LineBatch>,
    name: &'static str,
}

/// The lines and the writer's state, under one lock: a push that finds
/// no writer and the writer that decides to end cannot miss each other.
struct Pending {
    lines: Vec<u8>,
    writer: Writer,
    /// The run the last lines belong to (see [`LineBatch::push_or_fold`]).
    run: Run,
}

impl Pending {
    /// Bytes queued, the open run's IDs included.
    fn queued(&self) -> usize {
        self.lines.len() + self.run.held()
    }
}

struct Sink {
    out: Box<dyn Write + Send>,
    spare: Vec<u8>,
    /// `dropped` when the last notice was written.
    noticed: u64,
}

impl LineBatch {
    /// A batch whose writer thread, named `name`, runs while it has
    /// lines (see the module's text).
    pub fn with_writer(
        out: Box<dyn Write + Send>,
        max_pending: usize,
        extras: Extras,
        name: &'static str,
    ) -> Arc<LineBatch> {
        Arc::new_cyclic(|me| LineBatch::build(out, max_pending, extras, Writer::Idle, me, name))
    }

    /// A batch without a writer thread: only [`LineBatch::write_out`]
    /// writes it.
    pub fn new(out: Box<dyn Write + Send>, max_pending: usize, extras: Extras) -> LineBatch {
        LineBatch::build(out, max_pending, extras, Writer::Off, &Weak::new(), "")
    }

    fn build(
        out: Box<dyn Write + Send>,
        max_pending: usize,
        extras: Extras,
        writer: Writer,
        me: &Weak<LineBatch>,
        name: &'static str,
    ) -> LineBatch {
        LineBatch {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(PENDING_CAPACITY),
                writer,
                run: Run::default(),
            }),
            sink: Mutex::new(Sink {
                out,
                spare: Vec::with_capacity(PENDING_CAPACITY),
                noticed: 0,
            }),
            max_pending,
            dropped: AtomicU64::new(0),
            extras,
            woken: AtomicBool::new(false),
            me: me.clone(),
            name,
        }
    }

    /// Queue one whole line (ending with `\n`); `false` if it was dropped
    /// because the sink is not draining.
    ///
    /// The writer looks every [`FLUSH_EVERY`] while lines are few, and a
    /// flood that starts between two looks can fill the bound before the
    /// next. So the push that takes the pending lines past a quarter of
    /// the bound wakes the writer, once until its next look.
    ///
    /// With no writer running, the push starts one (a thread spawn, once
    /// per quiet spell).
    pub fn push(&self, line: &[u8]) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut *pending;
        p.run.finish(self.extras.fold, &mut p.lines);
        if p.lines.len() + line.len() > self.max_pending {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        p.lines.extend_from_slice(line);
        self.after_queue(pending);
        true
    }

    /// Queue a line that may repeat the last one: when the line queued
    /// just before had the same `key` (and its run has room), only `id`
    /// and `at` are kept, for the one line [`Extras::fold`] writes for
    /// the run's repeats; otherwise `full` writes the whole line (ending
    /// with `\n`) into the batch and starts a run. `false` if the line
    /// was dropped because the sink is not draining.
    ///
    /// `full` runs under the batch's lock: it should only format.
    pub fn push_or_fold(
        &self,
        key: &[u8],
        id: &[u8],
        at: Duration,
        full: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut *pending;
        // Without a fold line to write, a repeat would lose its ID: every
        // line is then queued in full.
        if self.extras.fold.is_some() && p.run.takes(key) {
            if p.queued() + id.len() + 1 > self.max_pending {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            p.run.add(id, at);
        } else {
            p.run.finish(self.extras.fold, &mut p.lines);
            let before = p.lines.len();
            full(&mut p.lines);
            if p.lines.len() > self.max_pending {
                p.lines.truncate(before);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            p.run.start(key, id);
        }
        self.after_queue(pending);
        true
    }

    /// After a line was queued: start the writer if none runs, wake it
    /// if the batch passed a quarter of its bound (see [`LineBatch::push`]).
    fn after_queue(&self, mut pending: std::sync::MutexGuard<'_, Pending>) {
        let start = matches!(pending.writer, Writer::Idle);
        if start {
            pending.writer = Writer::Running(None);
        }
        let wake = pending.queued() >= self.max_pending / 4
            && !self.woken.load(Ordering::Relaxed)
            && !self.woken.swap(true, Ordering::Relaxed);
        let wake = match &pending.writer {
            Writer::Running(Some(thread)) if wake => Some(thread.clone()),
            _ => None,
        };
        drop(pending);
        if start {
            self.start_writer();
        }
        if let Some(writer) = wake {
            writer.unpark();
        }
    }

    /// Whether so much came in while the last batch was written that the
    /// next should be written at once.
    fn behind(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .len()
            >= BEHIND
    }

    /// Lines dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Write what is pending now; whether there was anything.
    pub fn write_out(&self) -> bool {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let Sink {
            out,
            spare,
            noticed,
        } = &mut *sink;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let p = &mut *pending;
            // Runs never span batches: the open one's line goes with this.
            p.run.finish(self.extras.fold, &mut p.lines);
            if p.lines.is_empty() {
                return false;
            }
            spare.clear();
            std::mem::swap(&mut p.lines, spare);
        }
        let lines: &[u8] = spare;
        // Let the proxy's thread have the core back every WRITE_SLICE.
        // Yielding after every piece would give the writer one piece per
        // scheduler slice of the proxy's when both want the core, too
        // little for a flood. A slice of writing at a time keeps up, and
        // holds the proxy's thread up for no longer than that slice and
        // one piece.
        let mut since_yield = Instant::now();
        let mut done = 0;
        for piece in whole_lines(lines, WRITE_CHUNK) {
            if out.write_all(piece).is_err() {
                break;
            }
            done += piece.len();
            if since_yield.elapsed() >= WRITE_SLICE {
                std::thread::yield_now();
                since_yield = Instant::now();
            }
        }
        // A sink that fails (a full disk) loses the rest of the batch:
        // counted like lines the batch had no room for (a folded line
        // as one).
        let lost = lines[done..].iter().filter(|&&b| b == b'\n').count() as u64;
        self.dropped.fetch_add(lost, Ordering::Relaxed);
        let written = lost == 0;
        if written {
            let dropped = self.dropped();
            if let Some(notice) = self.extras.notice.filter(|_| dropped > *noticed) {
                notice(out.as_mut(), dropped - *noticed);
            }
            *noticed = dropped;
        }
        let _ = out.flush();
        true
    }
}

/// `batch` cut into pieces of about `size` bytes, each ending with a
/// whole line (a line longer than `size` is a piece of its own).
///
/// One `write(2)` of a whole batch (a flood's 10 ms can be a megabyte)
/// is a stretch of kernel time the proxy's thread, on the same core,
/// cannot interrupt on a kernel without preemption: it showed as the bad-
/// Origin flood's p99. Pieces with a yield between keep each stretch short;
/// whole lines keep a reader of the stream from seeing half a line.
fn whole_lines(batch: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() <= size {
            rest.len()
        } else {
            match rest[..size].iter().rposition(|&b| b == b'\n') {
                Some(nl) => nl + 1,
                None => rest[size..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |nl| size + nl + 1),
            }
        };
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
pub(crate) mod tests;
