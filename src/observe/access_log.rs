//! The access log: one JSON line per request (and per WebSocket at close).
//!
//! A line is written by hand on the request's task into a buffer its
//! thread keeps (not by serde_json's derive, which would be a large part
//! of an allowed request's work; the derive is kept as the format's
//! reference, and a test holds the two to the same JSON) and queued in a
//! [`LineBatch`], whose writer thread hands it to
//! the file or stdout (see [`log_writer`]): no allocation, no system call
//! and no wake-up per request, so a slow disk or a blocked stdout never
//! stalls proxying; if the writer falls behind, lines are dropped and
//! counted. A line is in the file at most [`log_writer::FLUSH_EVERY`]
//! after its request ended, and every pending line at shutdown.
//! Nothing secret goes in: token IDs instead of tokens, paths without query
//! strings (OpenClaw still accepts `?token=` on legacy links).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::client_ip::IpSource;
use crate::config;
use crate::deny::{needs_escape, push_json_string};
use crate::observe::log_writer::{self, Extras, LineBatch};
use clawgate_policy::authorize::Explained;

/// Past this many bytes waiting for the writer, lines are dropped: at
/// ≈350 bytes a line, some 48,000 lines, a few seconds of a busy proxy.
const MAX_PENDING: usize = 16 * 1024 * 1024;

/// When a line was written: RFC 3339, milliseconds.
pub type Timestamp = log_writer::Timestamp<3>;

/// One access-log record. Borrowed and `Copy` fields keep the hot path
/// free of allocations.
#[derive(Serialize, Clone)]
pub struct Record<'a> {
    #[serde(serialize_with = "display")]
    pub ts: Timestamp,
    pub kind: &'static str,
    pub request_id: &'a str,
    pub member: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'a str>,
    /// `-` when there is none (the request was refused before it was known).
    #[serde(serialize_with = "ip_or_dash")]
    pub client_ip: Option<IpAddr>,
    #[serde(serialize_with = "source_or_dash")]
    pub ip_source: Option<IpSource>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    /// The gateway address tried, on a 502/504 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "diff_of")]
    pub diff: Option<&'a Explained>,
}

// serde_json writes `collect_str` straight into its output, escaped,
// where `to_string` would allocate.
fn display<S: Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ip_or_dash<S: Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
    match ip {
        Some(ip) => s.collect_str(ip),
        None => s.serialize_str("-"),
    }
}

fn diff_of<S: Serializer>(e: &Option<&Explained>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => e.diff.serialize(s),
        None => s.serialize_none(),
    }
}

fn source_or_dash<S: Serializer>(src: &Option<IpSource>, s: S) -> Result<S::Ok, S::Error> {
    match src {
        Some(src) => s.collect_str(src),
        None => s.serialize_str("-"),
    }
}

impl Record<'_> {
    /// The record as one JSON line, newline included: the fields, names
    /// and order `Serialize` gives (see the tests), written by hand.
    fn write_line(&self, out: &mut String) {
        // Codes clawgate names itself: nothing to escape.
        debug_assert!(!needs_escape(self.kind) && !needs_escape(self.decision));
        out.reserve(400 + self.path.len() + self.diff.map_or(0, |e| e.json.len()));
        let _ = write!(out, "{{\"ts\":\"{}\",\"kind\":\"", self.ts);
        out.push_str(self.kind);
        out.push_str("\",\"request_id\":");
        push_json_string(out, self.request_id);
        out.push_str(",\"member\":");
        push_json_string(out, self.member);
        if let Some(c) = self.credential {
            out.push_str(",\"credential\":");
            push_json_string(out, c);
        }
        out.push_str(",\"client_ip\":\"");
        match self.client_ip {
            Some(IpAddr::V4(v4)) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(itoa::Buffer::new().format(octet));
                }
            }
            Some(ip) => {
                let _ = write!(out, "{ip}");
            }
            None => out.push('-'),
        }
        out.push_str("\",\"ip_source\":\"");
        match self.ip_source {
            Some(IpSource::Socket) => out.push_str("socket"),
            Some(IpSource::ForwardedFor { hop_from_right }) => {
                out.push_str("xff-");
                out.push_str(itoa::Buffer::new().format(hop_from_right));
            }
            None => out.push('-'),
        }
        out.push_str("\",\"method\":");
        push_json_string(out, self.method);
        out.push_str(",\"path\":");
        push_json_string(out, self.path);
        out.push_str(",\"status\":");
        out.push_str(itoa::Buffer::new().format(self.status));
        out.push_str(",\"decision\":\"");
        out.push_str(self.decision);
        out.push('"');
        if let Some(r) = self.reason {
            out.push_str(",\"reason\":");
            push_json_string(out, r);
        }
        if let Some(u) = self.upstream {
            out.push_str(",\"upstream\":");
            push_json_string(out, u);
        }
        if let Some(a) = self.upstream_addr {
            out.push_str(",\"upstream_addr\":");
            push_json_string(out, a);
        }
        if let Some(ms) = self.upstream_ms {
            out.push_str(",\"upstream_ms\":");
            push_f64(out, ms);
        }
        out.push_str(",\"duration_ms\":");
        push_f64(out, self.duration_ms);
        if let Some(n) = self.bytes_in {
            out.push_str(",\"bytes_in\":");
            out.push_str(itoa::Buffer::new().format(n));
        }
        if let Some(n) = self.bytes_out {
            out.push_str(",\"bytes_out\":");
            out.push_str(itoa::Buffer::new().format(n));
        }
        if let Some(e) = self.diff {
            // The diff's JSON, made once for the 403 body: the same bytes
            // `Serialize` would write for it.
            out.push_str(",\"diff\":");
            out.push_str(&e.json);
        }
        out.push_str("}\n");
    }
}

/// A number as serde_json writes it (`null` if not finite), without its
/// `Serializer`.
fn push_f64(out: &mut String, v: f64) {
    let mut buf = [0u8; 32];
    let mut cursor = &mut buf[..];
    if serde_json::to_writer(&mut cursor, &v).is_ok() {
        let written = 32 - cursor.len();
        out.push_str(std::str::from_utf8(&buf[..written]).unwrap_or("null"));
    } else {
        out.push_str("null");
    }
}

pub struct AccessLog {
    batch: Option<Arc<LineBatch>>,
}

impl AccessLog {
    /// Open the configured destination (its writer thread starts with
    /// the first line).
    pub fn start(cfg: &config::Log) -> io::Result<Self> {
        let sink: Box<dyn Write + Send> = match &cfg.access {
            config::AccessLog::Off => return Ok(AccessLog { batch: None }),
            config::AccessLog::Stdout => Box::new(io::stdout()),
            config::AccessLog::File(p) => {
                Box::new(RotatingFile::open(p.clone(), cfg.max_bytes, cfg.keep)?)
            }
        };
        let batch =
            LineBatch::with_writer(sink, MAX_PENDING, Extras::default(), "clawgate-access-log");
        Ok(AccessLog { batch: Some(batch) })
    }

    pub fn enabled(&self) -> bool {
        self.batch.is_some()
    }

    pub fn write(&self, rec: &Record<'_>) {
        let Some(batch) = &self.batch else { return };
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            rec.write_line(&mut line);
            batch.push(line.as_bytes());
        });
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.batch.as_ref().map_or(0, |b| b.dropped())
    }

    /// Write every pending line now (at shutdown).
    pub fn flush(&self) {
        if let Some(batch) = &self.batch {
            batch.write_out();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A file that rotates to `.1`, `.2`, ... past `max_bytes`.
struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: u32,
}

impl RotatingFile {
    /// Only a regular file rotates: `access = "/dev/null"` or a FIFO a
    /// log shipper reads must never be renamed (as root, rotating
    /// `/dev/null` would move the device node and leave a plain file).
    fn open(path: PathBuf, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let meta = file.metadata()?;
        Ok(RotatingFile {
            path,
            file,
            written: meta.len(),
            max_bytes: if meta.is_file() { max_bytes } else { u64::MAX },
            keep,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.keep).rev() {
            let from = self.path.with_extension(format!("log.{i}"));
            if from.exists() {
                fs::rename(&from, self.path.with_extension(format!("log.{}", i + 1)))?;
            }
        }
        if self.keep > 0 {
            fs::rename(&self.path, self.path.with_extension("log.1"))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests;
