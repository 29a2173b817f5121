//! The access log: one JSON line per request (and per WebSocket at close).
//!
//! Lines are built on the request's task and handed to a writer thread over
//! a bounded channel, so a slow disk or a blocked stdout never stalls
//! proxying; if the writer falls behind, lines are dropped and counted.
//! Nothing secret goes in: token IDs instead of tokens, paths without query
//! strings (OpenClaw still accepts `?token=` on legacy links).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use serde::Serialize;

use crate::config;
use crate::policy::Diff;

const QUEUE: usize = 65_536;

/// One access-log record. Borrowed fields keep the hot path allocation-light.
#[derive(Serialize)]
pub struct Record<'a> {
    pub ts: String,
    pub kind: &'static str,
    pub request_id: &'a str,
    pub member: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'a str>,
    pub client_ip: String,
    pub ip_source: String,
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

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub struct AccessLog {
    tx: Option<SyncSender<String>>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Start the writer thread for the configured destination.
    pub fn start(cfg: &config::Log) -> io::Result<Self> {
        let sink: Box<dyn Write + Send> = match &cfg.access {
            config::AccessLog::Off => {
                return Ok(AccessLog {
                    tx: None,
                    dropped: AtomicU64::new(0),
                })
            }
            config::AccessLog::Stdout => Box::new(io::stdout()),
            config::AccessLog::File(p) => {
                Box::new(RotatingFile::open(p.clone(), cfg.max_bytes, cfg.keep)?)
            }
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("clawgate-access-log".into())
            .spawn(move || writer(rx, sink))?;
        Ok(AccessLog {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn write(&self, rec: &Record<'_>) {
        let Some(tx) = &self.tx else { return };
        let Ok(line) = serde_json::to_string(rec) else {
            return;
        };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn writer(rx: Receiver<String>, sink: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, sink);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        // Drain what is queued, then flush once: batches under load,
        // prompt lines when idle.
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
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
    fn open(path: PathBuf, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file,
            written,
            max_bytes,
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
}
