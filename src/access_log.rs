//! The access log: one JSON line per request (and per WebSocket at close).
//!
//! A line is serialised on the request's task into a buffer its thread
//! keeps and queued in a [`LineBatch`], whose writer thread hands it to
//! the file or stdout (see [`log_writer`]): no allocation, no system call
//! and no wake-up per request, so a slow disk or a blocked stdout never
//! stalls proxying; if the writer falls behind, lines are dropped and
//! counted. A line is in the file at most [`log_writer::FLUSH_EVERY`]
//! after its request ended, and every pending line at shutdown.
//! Nothing secret goes in: token IDs instead of tokens, paths without query
//! strings (OpenClaw still accepts `?token=` on legacy links).

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::client_ip::IpSource;
use crate::config;
use crate::log_writer::{self, LineBatch};
use crate::policy::Diff;

/// Past this many bytes waiting for the writer, lines are dropped: at
/// ≈350 bytes a line, some 48,000 lines, a few seconds of a busy proxy.
const MAX_PENDING: usize = 16 * 1024 * 1024;

/// When a line was written: RFC 3339, milliseconds.
pub type Timestamp = log_writer::Timestamp<3>;

/// One access-log record. Borrowed and `Copy` fields keep the hot path
/// free of allocations.
#[derive(Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<&'a Diff>,
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

fn source_or_dash<S: Serializer>(src: &Option<IpSource>, s: S) -> Result<S::Ok, S::Error> {
    match src {
        Some(src) => s.collect_str(src),
        None => s.serialize_str("-"),
    }
}

pub struct AccessLog {
    batch: Option<Arc<LineBatch>>,
}

impl AccessLog {
    /// Open the configured destination and start its writer thread.
    pub fn start(cfg: &config::Log) -> io::Result<Self> {
        let sink: Box<dyn Write + Send> = match &cfg.access {
            config::AccessLog::Off => return Ok(AccessLog { batch: None }),
            config::AccessLog::Stdout => Box::new(io::stdout()),
            config::AccessLog::File(p) => {
                Box::new(RotatingFile::open(p.clone(), cfg.max_bytes, cfg.keep)?)
            }
        };
        let batch = Arc::new(LineBatch::new(sink, MAX_PENDING, None));
        log_writer::spawn_writer(&batch, "clawgate-access-log")?;
        Ok(AccessLog { batch: Some(batch) })
    }

    pub fn enabled(&self) -> bool {
        self.batch.is_some()
    }

    pub fn write(&self, rec: &Record<'_>) {
        let Some(batch) = &self.batch else { return };
        thread_local! {
            static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            if serde_json::to_writer(&mut *line, rec).is_ok() {
                line.push(b'\n');
                batch.push(&line);
            }
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
mod tests {
    use super::*;

    #[test]
    fn rotating_file_keeps_the_newest_files_within_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("access.log");
        let mut f = RotatingFile::open(path.clone(), 100, 2).unwrap();
        for i in 0..10 {
            f.write_all(format!("{{\"line\":{i:040}}}\n").as_bytes())
                .unwrap();
        }
        f.flush().unwrap();
        let current = fs::read_to_string(&path).unwrap();
        assert!(current.len() <= 100, "{}", current.len());
        assert!(current.contains("\"line\":0000000000000000000000000000000000000009"));
        assert!(path.with_extension("log.1").exists());
        assert!(path.with_extension("log.2").exists());
        assert!(!path.with_extension("log.3").exists(), "keep = 2");
    }

    #[test]
    fn only_a_regular_file_rotates() {
        let d = tempfile::tempdir().unwrap();
        let f = RotatingFile::open(d.path().join("access.log"), 100, 2).unwrap();
        assert_eq!(f.max_bytes, 100);
        // Opened, not written: nothing past the limit is ever renamed.
        let null = RotatingFile::open(PathBuf::from("/dev/null"), 100, 2).unwrap();
        assert_eq!(null.max_bytes, u64::MAX, "a device never rotates");
    }
}
