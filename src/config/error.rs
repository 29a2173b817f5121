//! Configuration errors: every one names the file, where in it, and what to do.
//!
//! Operators read these at 3 a.m. after a reload was refused, so the message
//! is the whole story: `config/members/alice.env:3: ORIGINS: ... (fix: ...)`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a file a problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The whole file (missing, unreadable, bad permissions).
    File,
    /// A 1-based line number.
    Line(usize),
    /// A dotted key (`upstreams.prod.url`) when no line is known.
    Key(String),
}

/// A configuration file refused, with the file, the place and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub location: Location,
    pub reason: String,
}

impl ConfigError {
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            location: Location::File,
            reason: reason.into(),
        }
    }

    pub fn line(file: &Path, line: usize, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            location: Location::Line(line),
            reason: reason.into(),
        }
    }

    pub fn key(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            location: Location::Key(key.into()),
            reason: reason.into(),
        }
    }

    /// The line number, when the error has one.
    pub fn line_number(&self) -> Option<usize> {
        match self.location {
            Location::Line(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File => write!(f, "{}: {}", self.file.display(), self.reason),
            Location::Line(n) => write!(f, "{}:{}: {}", self.file.display(), n, self.reason),
            Location::Key(k) => write!(f, "{}: {}: {}", self.file.display(), k, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line number of byte offset `offset` in `text`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
