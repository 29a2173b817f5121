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
//!
//! A flood of one refusal (a page on a wrong Origin retrying, a client
//! looping) is folded on its way out, see [`compact`]: the first line of
//! a run in full, then one line naming the rest by request ID. Every
//! request ID still reaches the log, at a tenth of the bytes: unfolded,
//! a bad-Origin flood at 170k requests/s was ≈73 MB/s of lines, more
//! than the writer got written on the proxy's core, and it dropped lines.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::log_writer::{Extras, LineBatch, Timestamp};

/// Past this, new lines are dropped (stderr is not draining).
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

fn batch() -> &'static Arc<LineBatch> {
    static BATCH: OnceLock<Arc<LineBatch>> = OnceLock::new();
    BATCH.get_or_init(|| {
        LineBatch::with_writer(
            Box::new(std::io::stderr()),
            MAX_PENDING,
            Extras {
                notice: Some(dropped_notice),
                compact: Some(compact),
            },
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

/// The most request IDs one folded line names.
pub const MAX_FOLDED: usize = 64;

/// What a line starts with after its timestamp, up to the request ID.
const HEAD: &[u8] = b"  INFO policy denial request_id=\"";

/// `batch` (whole lines) as written: each run of denial lines that
/// differ only in time and request ID becomes its first line, unchanged,
/// and one line for the rest, at the last one's time:
///
/// ```text
/// 2026-11-25T06:01:02.391002Z  INFO policy denial repeats=63 same_as="…" member="alice" path="/v1/x" decision="deny" reason="origin_not_allowed" request_ids="… …"
/// ```
///
/// `same_as` is the run's first line, just above, whose diff the rest
/// had too. A run ends at a different line or at [`MAX_FOLDED`] repeats;
/// runs never span batches, so a repeat is at most a batch's interval
/// (10 to 100 ms) from the full line. Any other line passes unchanged.
pub fn compact(batch: &[u8], out: &mut Vec<u8>) {
    out.reserve(batch.len().min(64 * 1024));
    let mut run: Option<Run<'_>> = None;
    for line in batch.split_inclusive(|&b| b == b'\n') {
        let parsed = Parsed::of(line);
        if let (Some(r), Some(p)) = (&mut run, &parsed) {
            if r.rest == p.rest && r.repeats < MAX_FOLDED {
                r.add(p, out);
                continue;
            }
        }
        if let Some(r) = run.take() {
            r.finish(out);
        }
        out.extend_from_slice(line);
        run = parsed.map(|p| Run::new(p, out.len()));
    }
    if let Some(r) = run {
        r.finish(out);
    }
}

/// A denial line's parts: `{time}{HEAD}{id}"{rest}`.
struct Parsed<'a> {
    time: &'a [u8],
    id: &'a [u8],
    /// After the ID's closing quote, without the newline.
    rest: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn of(line: &'a [u8]) -> Option<Parsed<'a>> {
        let line = line.strip_suffix(b"\n")?;
        let time_len = line.iter().position(|&b| b == b' ')?;
        let (time, after) = line.split_at(time_len);
        let after = after.strip_prefix(HEAD)?;
        let end = closing_quote(after)?;
        Some(Parsed {
            time,
            id: &after[..end],
            rest: &after[end + 1..],
        })
    }
}

/// The index of the `"` that ends a JSON string's contents.
fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A run being folded: its first line is written; the repeats' IDs
/// gather at the end of `out` until [`Run::finish`].
struct Run<'a> {
    first_id: &'a [u8],
    rest: &'a [u8],
    last_time: &'a [u8],
    repeats: usize,
    /// Where this run's IDs start in `out`.
    ids_at: usize,
}

impl<'a> Run<'a> {
    /// A run whose first line ends at `ids_at` in `out`.
    fn new(first: Parsed<'a>, ids_at: usize) -> Run<'a> {
        Run {
            first_id: first.id,
            rest: first.rest,
            last_time: first.time,
            repeats: 0,
            ids_at,
        }
    }

    fn add(&mut self, p: &Parsed<'a>, out: &mut Vec<u8>) {
        if self.repeats > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(p.id);
        self.repeats += 1;
        self.last_time = p.time;
    }

    /// Replace the gathered IDs with the folded line that carries them.
    fn finish(self, out: &mut Vec<u8>) {
        if self.repeats == 0 {
            return;
        }
        let ids = out.split_off(self.ids_at);
        // The fields before the diff (member, path, decision, reason):
        // a path has no spaces (the request line would not have parsed),
        // so the first " diff=" is the field.
        let fields = self
            .rest
            .windows(6)
            .position(|w| w == b" diff=")
            .map_or(self.rest, |at| &self.rest[..at]);
        out.extend_from_slice(self.last_time);
        let _ = write!(out, "  INFO policy denial repeats={}", self.repeats);
        out.extend_from_slice(b" same_as=\"");
        out.extend_from_slice(self.first_id);
        out.push(b'"');
        out.extend_from_slice(fields);
        out.extend_from_slice(b" request_ids=\"");
        out.extend_from_slice(&ids);
        out.extend_from_slice(b"\"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ms: u64, id: &str, path: &str, presented: &str) -> String {
        format_line(&Denial {
            at: Duration::from_millis(1_764_050_462_000 + ms),
            request_id: id,
            member: "alice",
            path,
            decision: "deny",
            reason: "origin_not_allowed",
            diff: &format!(r#"{{"origin":{{"presented":"{presented}"}}}}"#),
        })
    }

    fn compacted(lines: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        compact(lines.concat().as_bytes(), &mut out);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_run_of_one_refusal_is_its_first_line_and_one_line_naming_the_rest() {
        let evil = "https://evil.example.net";
        let lines: Vec<String> = (0..5)
            .map(|i| line(i, &format!("r-{i}"), "/v1/x", evil))
            .collect();
        let out = compacted(&lines);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(format!("{}\n", out[0]), lines[0], "the first, unchanged");
        assert_eq!(
            out[1],
            "2025-11-25T06:01:02.004000Z  INFO policy denial repeats=4 same_as=\"r-0\" \
             member=\"alice\" path=\"/v1/x\" decision=\"deny\" reason=\"origin_not_allowed\" \
             request_ids=\"r-1 r-2 r-3 r-4\""
        );
    }

    #[test]
    fn a_line_that_differs_ends_the_run_and_other_lines_pass_unchanged() {
        let (a, b) = ("https://a.example", "https://b.example");
        let lines = vec![
            line(0, "r-0", "/x", a),
            line(1, "r-1", "/x", a),
            line(2, "r-2", "/x", b), // another diff
            line(3, "r-3", "/y", b), // another path
            "2025-11-25T06:01:02.004000Z  WARN something else\n".to_string(),
            line(5, "r-5", "/y", b), // after a foreign line: a new run
            line(6, "r-6", "/y", b),
        ];
        let out = compacted(&lines);
        assert_eq!(out.len(), 7, "{out:#?}");
        assert!(
            out[1].contains("repeats=1 same_as=\"r-0\"") && out[1].ends_with("request_ids=\"r-1\"")
        );
        assert_eq!(format!("{}\n", out[2]), lines[2]);
        assert_eq!(format!("{}\n", out[3]), lines[3]);
        assert_eq!(format!("{}\n", out[4]), lines[4]);
        assert_eq!(format!("{}\n", out[5]), lines[5]);
        assert!(out[6].contains("same_as=\"r-5\"") && out[6].ends_with("request_ids=\"r-6\""));
    }

    #[test]
    fn every_id_is_written_once_and_a_folded_line_names_at_most_max_folded() {
        let lines: Vec<String> = (0..200)
            .map(|i| line(i, &format!("id-{i}"), "/v1/x", "https://evil.example"))
            .collect();
        let out = compacted(&lines);
        let mut ids = Vec::new();
        for l in &out {
            if let Some(list) = l.split("request_ids=\"").nth(1) {
                let list: Vec<&str> = list.trim_end_matches('"').split(' ').collect();
                assert!(list.len() <= MAX_FOLDED);
                ids.extend(list.iter().map(|s| s.to_string()));
            } else {
                let p = Parsed::of(format!("{l}\n").as_bytes()).map(|p| p.id.to_vec());
                ids.push(String::from_utf8(p.unwrap()).unwrap());
            }
        }
        let want: Vec<String> = (0..200).map(|i| format!("id-{i}")).collect();
        assert_eq!(ids, want, "each once, in order");
        assert_eq!(out.len(), 2 * 200usize.div_ceil(MAX_FOLDED + 1));
    }

    #[test]
    fn an_escaped_quote_in_an_id_is_kept_whole() {
        let lines = vec![line(0, "a\"b", "/x", "o"), line(1, "c\\\"d", "/x", "o")];
        let out = compacted(&lines);
        assert_eq!(out.len(), 2);
        assert!(out[1].contains(r#"same_as="a\"b""#), "{}", out[1]);
        assert!(out[1].ends_with(r#"request_ids="c\\\"d""#), "{}", out[1]);
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
