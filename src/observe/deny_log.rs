//! The policy-denial line on stderr, batched.
//!
//! Every refused request that has a diff is logged, access log on or off
//! (DESIGN: "the same diff is always written to the log"), so a client
//! hammering a wrong Origin must not make the deny path dearer than
//! forwarding, as `tracing`'s formatter and a `write(2)` per 403 would.
//! Here the line is built by hand and queued in one process-wide
//! [`LineBatch`], whose writer thread hands it to stderr, in the shape
//! `tracing` prints:
//!
//! ```text
//! 2026-11-25T06:01:02.345678Z  INFO policy denial request_id="…" member="alice" path="/v1/x" decision="deny" reason="origin_not_allowed" diff={…}
//! ```
//!
//! Lines may reach stderr up to [`crate::observe::log_writer::FLUSH_EVERY`] after other
//! diagnostics printed at the same moment. How they are written, off the
//! request path and never waking a thread, is [`crate::observe::log_writer`]'s.
//!
//! A flood of one refusal (a page on a wrong Origin retrying, a client
//! looping) is folded as it is queued ([`LineBatch::push_or_fold`]): the
//! first line of a run in full, then one line naming the rest by request
//! ID, at the last one's time:
//!
//! ```text
//! 2026-11-25T06:01:02.391002Z  INFO policy denial repeats=63 same_as="…" member="alice" path="/v1/x" decision="deny" reason="origin_not_allowed" request_ids="… …"
//! ```
//!
//! `same_as` is the run's first line, above it, whose diff the rest had
//! too. Every request ID still reaches the log, in far fewer bytes:
//! unfolded, a flood's lines outrun what the writer gets written on the
//! proxy's core, and lines are dropped. A repeat is not formatted at
//! all: its key (the fields and the diff) is compared with the run's and
//! its ID appended.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::deny::push_json_string;
use crate::observe::log_writer::{Extras, LineBatch, Run, Timestamp};

/// Past this, new lines are dropped (stderr is not draining).
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

fn batch() -> &'static Arc<LineBatch> {
    static BATCH: OnceLock<Arc<LineBatch>> = OnceLock::new();
    BATCH.get_or_init(|| {
        LineBatch::with_writer(
            Box::new(std::io::stderr()),
            MAX_PENDING,
            EXTRAS,
            "clawgate-deny-log",
        )
    })
}

/// The denial log's stream: a notice of dropped lines, folded repeats.
const EXTRAS: Extras = Extras {
    notice: Some(dropped_notice),
    fold: Some(fold_line),
};

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
    write_to(batch(), d);
}

/// The parts of a denial line, made once per refusal (per-thread
/// buffers, reused).
#[derive(Default)]
struct Parts {
    /// `FIELDS\nDIFF`: what a run's lines share. The fields are escaped,
    /// so the first newline is the one between them.
    key: String,
    /// The request ID as a JSON string, quotes included.
    id: String,
}

fn write_to(batch: &LineBatch, d: &Denial<'_>) {
    thread_local! {
        static PARTS: RefCell<Parts> = RefCell::new(Parts::default());
    }
    PARTS.with(|parts| {
        let Parts { key, id } = &mut *parts.borrow_mut();
        key.clear();
        fields_into(key, d);
        let fields = key.len();
        key.push('\n');
        // The diff is JSON made here (one line, escaped); it goes in as is.
        key.push_str(d.diff);
        id.clear();
        push_json_string(id, d.request_id);
        let unquoted = &id.as_bytes()[1..id.len() - 1];
        batch.push_or_fold(key.as_bytes(), unquoted, d.at, |out| {
            line_into(out, d.at, id, &key[..fields], d.diff)
        });
    });
}

/// Write whatever is pending now (at shutdown, so nothing is lost).
pub fn flush() {
    batch().write_out();
}

/// ` member="…" path="…" decision="…" reason="…"`, escaped.
fn fields_into(out: &mut String, d: &Denial<'_>) {
    for (key, value) in [(" member=", d.member), (" path=", d.path)] {
        out.push_str(key);
        push_json_string(out, value);
    }
    // Codes clawgate names itself (`decision`, `reason`): nothing to escape.
    debug_assert!(!crate::deny::needs_escape(d.decision) && !crate::deny::needs_escape(d.reason));
    for (key, value) in [(" decision=\"", d.decision), ("\" reason=\"", d.reason)] {
        out.push_str(key);
        out.push_str(value);
    }
    out.push('"');
}

/// A whole line: `id` is the request ID's JSON string (quoted).
fn line_into(out: &mut Vec<u8>, at: Duration, id: &str, fields: &str, diff: &str) {
    out.reserve(64 + id.len() + fields.len() + diff.len());
    let _ = write!(out, "{}", Timestamp::<6>(at));
    out.extend_from_slice(b"  INFO policy denial request_id=");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(fields.as_bytes());
    out.extend_from_slice(b" diff=");
    out.extend_from_slice(diff.as_bytes());
    out.push(b'\n');
}

/// The line for a run's repeats, at the last one's time, naming the
/// full line's ID and the fields before the diff.
fn fold_line(run: &Run, out: &mut Vec<u8>) {
    let key = run.key();
    let fields = key.split(|&b| b == b'\n').next().unwrap_or(key);
    let _ = write!(
        out,
        "{}  INFO policy denial repeats={} same_as=\"",
        Timestamp::<6>(run.last_at()),
        run.repeats()
    );
    out.extend_from_slice(run.first_id());
    out.push(b'"');
    out.extend_from_slice(fields);
    out.extend_from_slice(b" request_ids=\"");
    out.extend_from_slice(run.ids());
    out.extend_from_slice(b"\"\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::log_writer::tests::Shared;

    /// `TIMESTAMP  INFO policy denial key="value" … diff={…}` plus a
    /// newline: `d`'s line written in full, as the first of a run is.
    fn format_line(d: &Denial<'_>) -> String {
        let mut fields = String::new();
        fields_into(&mut fields, d);
        let mut id = String::new();
        push_json_string(&mut id, d.request_id);
        let mut out = Vec::new();
        line_into(&mut out, d.at, &id, &fields, d.diff);
        String::from_utf8(out).expect("every part is a str")
    }

    /// What a test queues: a refusal, or another stream's line.
    enum Item {
        Refusal {
            ms: u64,
            id: String,
            path: &'static str,
            diff: String,
        },
        Other(&'static str),
        /// The writer's turn: the batch is written out.
        Flush,
    }

    fn refusal(ms: u64, id: &str, path: &'static str, presented: &str) -> Item {
        Item::Refusal {
            ms,
            id: id.to_string(),
            path,
            diff: format!(r#"{{"origin":{{"presented":"{presented}"}}}}"#),
        }
    }

    fn denial<'a>(ms: u64, id: &'a str, path: &'a str, diff: &'a str) -> Denial<'a> {
        Denial {
            at: Duration::from_millis(1_764_050_462_000 + ms),
            request_id: id,
            member: "alice",
            path,
            decision: "deny",
            reason: "origin_not_allowed",
            diff,
        }
    }

    /// The stream `items` make, queued one by one as requests queue them.
    fn written(items: &[Item]) -> Vec<String> {
        let sink = Shared::default();
        let batch = LineBatch::new(Box::new(sink.clone()), MAX_PENDING, EXTRAS);
        for item in items {
            match item {
                Item::Refusal { ms, id, path, diff } => {
                    write_to(&batch, &denial(*ms, id, path, diff))
                }
                Item::Other(line) => assert!(batch.push(line.as_bytes())),
                Item::Flush => {
                    batch.write_out();
                }
            }
        }
        batch.write_out();
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        out.lines().map(str::to_string).collect()
    }

    /// The full line `item` (a refusal) would be on its own.
    fn full(item: &Item) -> String {
        let Item::Refusal { ms, id, path, diff } = item else {
            panic!("not a refusal")
        };
        format_line(&denial(*ms, id, path, diff))
            .trim_end()
            .to_string()
    }

    #[test]
    fn a_run_of_one_refusal_is_its_first_line_and_one_line_naming_the_rest() {
        let evil = "https://evil.example.net";
        let items: Vec<Item> = (0..5)
            .map(|i| refusal(i, &format!("r-{i}"), "/v1/x", evil))
            .collect();
        let out = written(&items);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0], full(&items[0]), "the first, unchanged");
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
        let items = vec![
            refusal(0, "r-0", "/x", a),
            refusal(1, "r-1", "/x", a),
            refusal(2, "r-2", "/x", b), // another diff
            refusal(3, "r-3", "/y", b), // another path
            Item::Other("2025-11-25T06:01:02.004000Z  WARN something else\n"),
            refusal(5, "r-5", "/y", b), // after a foreign line: a new run
            refusal(6, "r-6", "/y", b),
        ];
        let out = written(&items);
        assert_eq!(out.len(), 7, "{out:#?}");
        assert_eq!(out[0], full(&items[0]));
        assert!(
            out[1].contains("repeats=1 same_as=\"r-0\"") && out[1].ends_with("request_ids=\"r-1\"")
        );
        assert_eq!(out[2], full(&items[2]));
        assert_eq!(out[3], full(&items[3]));
        assert_eq!(out[4], "2025-11-25T06:01:02.004000Z  WARN something else");
        assert_eq!(out[5], full(&items[5]));
        assert!(out[6].contains("same_as=\"r-5\"") && out[6].ends_with("request_ids=\"r-6\""));
    }

    #[test]
    fn a_run_ends_with_its_batch() {
        let o = "https://evil.example";
        let items = vec![
            refusal(0, "r-0", "/x", o),
            refusal(1, "r-1", "/x", o),
            Item::Flush,
            refusal(2, "r-2", "/x", o),
            refusal(3, "r-3", "/x", o),
        ];
        let out = written(&items);
        assert_eq!(out.len(), 4, "{out:#?}");
        assert_eq!(out[0], full(&items[0]));
        assert!(out[1].ends_with("same_as=\"r-0\" member=\"alice\" path=\"/x\" decision=\"deny\" reason=\"origin_not_allowed\" request_ids=\"r-1\""), "{}", out[1]);
        assert_eq!(out[2], full(&items[3]), "the next batch starts in full");
        assert!(out[3].ends_with("same_as=\"r-2\" member=\"alice\" path=\"/x\" decision=\"deny\" reason=\"origin_not_allowed\" request_ids=\"r-3\""), "{}", out[3]);
    }

    #[test]
    fn every_id_is_written_once_and_a_folded_line_names_at_most_max_folded() {
        let items: Vec<Item> = (0..200)
            .map(|i| refusal(i, &format!("id-{i}"), "/v1/x", "https://evil.example"))
            .collect();
        let out = written(&items);
        let mut ids = Vec::new();
        for l in &out {
            if let Some(list) = l.split("request_ids=\"").nth(1) {
                let list: Vec<&str> = list.trim_end_matches('"').split(' ').collect();
                assert!(list.len() <= crate::observe::log_writer::MAX_FOLDED);
                ids.extend(list.iter().map(|s| s.to_string()));
            } else {
                let id = l.split("request_id=\"").nth(1).unwrap().split('"').next();
                ids.push(id.unwrap().to_string());
            }
        }
        let want: Vec<String> = (0..200).map(|i| format!("id-{i}")).collect();
        assert_eq!(ids, want, "each once, in order");
        let per_run = crate::observe::log_writer::MAX_FOLDED + 1;
        assert_eq!(out.len(), 2 * 200usize.div_ceil(per_run));
    }

    #[test]
    fn an_escaped_quote_in_an_id_is_kept_whole() {
        let items = vec![
            refusal(0, "a\"b", "/x", "o"),
            refusal(1, "c\\\"d", "/x", "o"),
        ];
        let out = written(&items);
        assert_eq!(out.len(), 2);
        assert!(out[1].contains(r#"same_as="a\"b""#), "{}", out[1]);
        assert!(out[1].ends_with(r#"request_ids="c\\\"d""#), "{}", out[1]);
    }

    #[test]
    fn a_batch_past_its_bound_drops_repeats_and_counts_them() {
        let sink = Shared::default();
        let first = format_line(&denial(0, "r-0", "/x", "{}"));
        // Room for the first line and one repeat's ID ("r-1" and a space).
        let batch = LineBatch::new(Box::new(sink.clone()), first.len() + 4, EXTRAS);
        for i in 0..3 {
            write_to(&batch, &denial(i, &format!("r-{i}"), "/x", "{}"));
        }
        assert_eq!(batch.dropped(), 1, "r-2 had no room");
        batch.write_out();
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(out.starts_with(&first), "{out}");
        assert!(out.contains("request_ids=\"r-1\"\n"), "{out}");
        assert!(!out.contains("r-2"), "{out}");
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
