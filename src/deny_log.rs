//! The policy-denial line on stderr, batched.
//!
//! Every refused request that has a diff is logged, access log on or off
//! (DESIGN: "the same diff is always written to the log"). Through
//! `tracing`'s formatter that line cost ≈11k instructions and a `write(2)`
//! per 403, more than the rest of the refusal together, so a client
//! hammering a wrong Origin made the deny path dearer than forwarding.
//! Here the line is built by hand into one process-wide buffer, and a
//! writer thread hands it to stderr every [`FLUSH_BUSY`] while lines keep
//! coming (every [`FLUSH_EVERY`] when they don't), in the shape `tracing`
//! prints:
//!
//! ```text
//! 2026-11-25T06:01:02.345678Z  INFO policy denial request_id="…" member="alice" path="/v1/x" decision="deny" reason="origin_not_allowed" diff={…}
//! ```
//!
//! Lines may reach stderr up to [`FLUSH_EVERY`] after other diagnostics
//! printed at the same moment. A stderr that stops draining never stalls a
//! request: past [`MAX_PENDING`] bytes lines are dropped and the count is
//! logged at the next flush that gets through.
//!
//! The writer is never woken by a request: waking it per batch was a
//! futex call from the proxy's thread, and the writer, just woken, took
//! the core from it at once (a `perf` profile of a bad-Origin flood put
//! the switches at ≈5 % of its CPU). It wakes on its own clock and runs
//! at a lower priority (nice 10), so it writes when the proxy's thread
//! waits for the network, or in the share the scheduler gives it.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a line may wait in the buffer when lines are few.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... and while they keep coming (the last look found some).
pub const FLUSH_BUSY: Duration = Duration::from_millis(10);
/// The buffers' starting size (they grow, and are kept, under a flood).
const PENDING_CAPACITY: usize = 256 * 1024;
/// The writer's nice value: below the proxy's threads.
const WRITER_NICE: i32 = 10;
/// The most handed to one `write(2)`: see [`write_out`].
const WRITE_CHUNK: usize = 16 * 1024;
/// Past this, new lines are dropped (stderr is not draining).
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// The last batch's buffer, emptied, for the next swap.
    spare: Mutex<Vec<u8>>,
    /// Serialises writers so lines from the thread and [`flush`] don't interleave.
    writing: Mutex<()>,
    dropped: AtomicU64,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<&'static Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let s: &'static Shared = Box::leak(Box::new(Shared {
            pending: Mutex::new(Vec::with_capacity(PENDING_CAPACITY)),
            spare: Mutex::new(Vec::with_capacity(PENDING_CAPACITY)),
            writing: Mutex::new(()),
            dropped: AtomicU64::new(0),
        }));
        let started = std::thread::Builder::new()
            .name("clawgate-deny-log".into())
            .spawn(move || {
                // Best effort: at the default priority it still works.
                let _ = rustix::process::setpriority_process(
                    Some(rustix::thread::gettid()),
                    WRITER_NICE,
                );
                let mut wait = FLUSH_EVERY;
                loop {
                    std::thread::sleep(wait);
                    wait = if write_out(s) {
                        FLUSH_BUSY
                    } else {
                        FLUSH_EVERY
                    };
                }
            });
        if let Err(e) = started {
            tracing::warn!(
                "denial log writer thread did not start ({e}); lines are written as they come"
            );
        }
        s
    })
}

/// One refused request, as logged.
pub struct Denial<'a> {
    /// When (since the Unix epoch): the request's own clock reading.
    pub at: Duration,
    pub request_id: &'a str,
    pub member: &'a str,
    pub path: &'a str,
    pub decision: &'a str,
    pub reason: &'a str,
    /// The diff's JSON, as in the 403 body.
    pub diff: &'a str,
}

/// Queue the line for `d` (nothing when `tracing` filters out INFO).
pub fn write(d: &Denial<'_>) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        format_into(&mut line, d);
        let s = shared();
        let mut pending = s.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() + line.len() > MAX_PENDING {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.extend_from_slice(line.as_bytes());
    });
}

/// Write whatever is pending now (at shutdown, so nothing is lost).
pub fn flush() {
    write_out(shared());
}

/// Write what is pending; whether there was anything.
fn write_out(s: &Shared) -> bool {
    let _writing = s.writing.lock().unwrap_or_else(|e| e.into_inner());
    let mut batch = s.spare.lock().unwrap_or_else(|e| e.into_inner());
    {
        let mut pending = s.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return false;
        }
        batch.clear();
        std::mem::swap(&mut *pending, &mut *batch);
    }
    let mut err = std::io::stderr().lock();
    let written = whole_lines(&batch, WRITE_CHUNK).all(|piece| {
        let ok = err.write_all(piece).is_ok();
        // Let the proxy's thread have the core back between pieces.
        std::thread::yield_now();
        ok
    });
    if written {
        let dropped = s.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                err,
                "{}  WARN {dropped} policy denial lines dropped: stderr was not draining",
                humantime::format_rfc3339_micros(SystemTime::now())
            );
        }
    }
    let _ = err.flush();
    true
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

/// `TIMESTAMP  INFO policy denial key="value" … diff={…}` plus a newline.
pub fn format_line(d: &Denial<'_>) -> String {
    let mut line = String::new();
    format_into(&mut line, d);
    line
}

/// [`format_line`] into `line` (a per-thread buffer, reused).
fn format_into(line: &mut String, d: &Denial<'_>) {
    line.reserve(160 + d.path.len() + d.diff.len());
    timestamp(line, d.at);
    line.push_str("  INFO policy denial");
    for (key, value) in [
        (" request_id=", d.request_id),
        (" member=", d.member),
        (" path=", d.path),
    ] {
        line.push_str(key);
        crate::deny::push_json_string(line, value);
    }
    // Codes clawgate names itself (`decision`, `reason`): nothing to escape.
    debug_assert!(!crate::deny::needs_escape(d.decision) && !crate::deny::needs_escape(d.reason));
    for (key, value) in [(" decision=\"", d.decision), ("\" reason=\"", d.reason)] {
        line.push_str(key);
        line.push_str(value);
    }
    line.push('"');
    line.push_str(" diff=");
    // The diff is JSON made here (one line, escaped); it goes in as is.
    line.push_str(d.diff);
    line.push('\n');
}

/// RFC 3339 UTC with microseconds, as `tracing` prints it: the part up to
/// the second is formatted once a second per thread (humantime's whole
/// formatter cost ≈600 instructions per line).
fn timestamp(out: &mut String, since: Duration) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != since.as_secs() {
            let whole = UNIX_EPOCH + Duration::from_secs(since.as_secs());
            let s = humantime::format_rfc3339_seconds(whole).to_string();
            // `…T06:01:02Z`: keep it without the `Z`.
            *c = (since.as_secs(), s.trim_end_matches('Z').to_string());
        }
        out.push_str(&c.1);
    });
    let mut micros = [b'0'; 6];
    let mut n = since.subsec_micros();
    for d in micros.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push('.');
    out.push_str(std::str::from_utf8(&micros).unwrap_or("000000"));
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_humantime_across_seconds_and_small_micros() {
        for micros in [
            0u64,
            7,
            999_999,
            1_000_000,
            1_764_050_462_000_042,
            1_764_050_463_500_000,
        ] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
            let mut ours = String::new();
            timestamp(&mut ours, Duration::from_micros(micros));
            assert_eq!(ours, humantime::format_rfc3339_micros(at).to_string());
        }
    }

    #[test]
    fn pieces_end_with_whole_lines_and_lose_nothing() {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("{}\n", "x".repeat(i * 7)))
            .collect();
        let mut batch: Vec<u8> = lines.concat().into_bytes();
        // A line longer than a piece, and a last line without its newline.
        batch.extend_from_slice(&[b'y'; 300]);
        batch.extend_from_slice(b"\nz");
        for size in [1, 16, 64, 100, 299, 4096] {
            let pieces: Vec<&[u8]> = whole_lines(&batch, size).collect();
            assert_eq!(pieces.concat(), batch, "size {size}");
            for p in &pieces[..pieces.len() - 1] {
                assert_eq!(p.last(), Some(&b'\n'), "size {size}");
                // Over `size` only when it is one line.
                assert!(
                    p.len() <= size || p.iter().filter(|&&b| b == b'\n').count() == 1,
                    "size {size}: {} bytes",
                    p.len()
                );
            }
        }
        assert_eq!(whole_lines(b"", 16).count(), 0);
    }

    #[test]
    fn a_line_has_every_field_quoted_and_the_diff_verbatim() {
        let line = format_line(&Denial {
            at: Duration::from_micros(1_764_050_462_345_678),
            request_id: "r-1",
            member: "alice",
            path: "/v1/\"x\"",
            decision: "deny",
            reason: "origin_not_allowed",
            diff: r#"{"origin":{"presented":"https://evil.example.net"}}"#,
        });
        assert_eq!(
            line,
            "2025-11-25T06:01:02.345678Z  INFO policy denial request_id=\"r-1\" member=\"alice\" \
             path=\"/v1/\\\"x\\\"\" decision=\"deny\" reason=\"origin_not_allowed\" \
             diff={\"origin\":{\"presented\":\"https://evil.example.net\"}}\n"
        );
    }
}
