//! The access log's last lines for the packet, wherever the log goes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::LogTail;
use crate::config::AccessLog;

pub(super) fn tail_log(dest: &AccessLog, n: usize) -> LogTail {
    match dest {
        AccessLog::Off => LogTail {
            destination: "off",
            path: None,
            note: Some("[log] access = \"off\": there is no access log to show".into()),
            lines: Vec::new(),
        },
        AccessLog::Stdout => LogTail {
            destination: "stdout",
            path: None,
            note: Some(
                "the access log goes to stdout: read it where clawgate's output is kept (e.g. journalctl -u clawgate -n 200)".into(),
            ),
            lines: Vec::new(),
        },
        AccessLog::File(p) => {
            let mut note = None;
            let mut lines = match tail_file(p, n) {
                Ok(l) => l,
                Err(e) => {
                    note = Some(format!("{}: {e}", p.display()));
                    Vec::new()
                }
            };
            // Just rotated: take the rest from the previous file.
            if lines.len() < n {
                let older = p.with_extension("log.1");
                if let Ok(mut prev) = tail_file(&older, n - lines.len()) {
                    prev.append(&mut lines);
                    lines = prev;
                }
            }
            LogTail {
                destination: "file",
                path: Some(p.display().to_string()),
                note,
                lines,
            }
        }
    }
}

/// The last `n` lines of a file, reading backwards in chunks.
pub fn tail_file(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    const CHUNK: u64 = 64 * 1024;
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    while pos > 0 && buf.iter().filter(|b| **b == b'\n').count() <= n {
        let step = CHUNK.min(pos);
        pos -= step;
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0u8; step as usize];
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    // The first line may be partial when we stopped mid-file.
    let start = all.len().saturating_sub(n);
    Ok(all[start..].iter().map(|l| l.to_string()).collect())
}
