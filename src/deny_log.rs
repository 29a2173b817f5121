//! The policy-denial line on stderr, batched.
//!
//! Every refused request that has a diff is logged, access log on or off
//! (DESIGN: "the same diff is always written to the log"). Through
//! `tracing`'s formatter that line cost ≈11k instructions and a `write(2)`
//! per 403, more than the rest of the refusal together, so a client
//! hammering a wrong Origin made the deny path dearer than forwarding.
//! Here the line is built by hand and queued in one process-wide
//! [`LineBatch`], whose writer thread hands it to stderr, in the shape
//! `tracing` prints:
//!
//! ```text
//! 2026-11-25T06:01:02.345678Z  INFO policy denial request_id="…" member="alice" path="/v1/x" decision="deny" reason="origin_not_allowed" diff={…}
//! ```
//!
//! Lines may reach stderr up to [`crate::log_writer::FLUSH_EVERY`] after other
//! diagnostics printed at the same moment. How they are written, off the
//! request path and never waking a thread, is [`crate::log_writer`]'s.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::log_writer::{LineBatch, Timestamp};

/// Past this, new lines are dropped (stderr is not draining).
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

fn batch() -> &'static Arc<LineBatch> {
    static BATCH: OnceLock<Arc<LineBatch>> = OnceLock::new();
    BATCH.get_or_init(|| {
        LineBatch::with_writer(
            Box::new(std::io::stderr()),
            MAX_PENDING,
            Some(dropped_notice),
            "clawgate-deny-log",
        )
    })
}

fn dropped_notice(out: &mut dyn Write, dropped: u64) {
    let _ = writeln!(
        out,
        "{}  WARN {dropped} policy denial lines dropped: stderr was not draining",
        humantime::format_rfc3339_micros(SystemTime::now())
    );
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
        batch().push(line.as_bytes());
    });
}

/// Write whatever is pending now (at shutdown, so nothing is lost).
pub fn flush() {
    batch().write_out();
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
    let _ = write!(line, "{}", Timestamp::<6>(d.at));
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

#[cfg(test)]
mod tests {
    use super::*;

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
