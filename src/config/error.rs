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

    /// A problem with a key of a TOML file whose text is `text`: on the
    /// key's line (or, when the key is absent, its nearest enclosing table
    /// or array entry), and named in the reason. `key` is dotted, with
    /// array indexes: `public[0].upstream`.
    pub fn toml_key(file: &Path, text: &str, key: &str, reason: impl Into<String>) -> Self {
        match line_of_key(text, key) {
            Some(n) => ConfigError::line(file, n, format!("{key}: {}", reason.into())),
            None => ConfigError::key(file, key, reason),
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

/// A problem with `key` of the env file at `path`, on the line that sets
/// it when there is one. For checks across files, made after parsing.
pub fn env_key_error(path: &Path, key: &str, reason: String) -> ConfigError {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text.lines().position(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("export ").unwrap_or(l);
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    match line {
        Some(i) => ConfigError::line(path, i + 1, reason),
        None => ConfigError::file(path, reason),
    }
}

/// 1-based line of the dotted `key` (`public[0].upstream`) in the TOML
/// `text`, or of the deepest part of it that is present. Only called on
/// the error path, so re-parsing the text is fine.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut found = None;
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some((k, mut v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        found = Some(k.span().start);
        if let Some(i) = index {
            match v.get_ref().as_array().and_then(|a| a.get(i)) {
                Some(item) => {
                    found = Some(item.span().start);
                    v = item;
                }
                None => break,
            }
        }
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found.map(|at| line_of_offset(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[listen]\naddr = \"x\"\n\n[[public]]\npath_prefix = \"/a/\"\n\n[[public]]\npath_prefix = \"/b/\"\nupstream = \"nope\"\n\n[members]\ndefault_upstream = \"nope\"\n";

    #[test]
    fn keys_find_their_lines() {
        assert_eq!(line_of_key(TEXT, "listen.addr"), Some(2));
        assert_eq!(line_of_key(TEXT, "public[1].upstream"), Some(9));
        assert_eq!(line_of_key(TEXT, "members.default_upstream"), Some(12));
    }

    #[test]
    fn an_absent_key_points_at_its_table() {
        assert_eq!(line_of_key(TEXT, "listen.tls_cert"), Some(1));
        assert_eq!(line_of_key(TEXT, "upstreams"), None);
        let e = ConfigError::toml_key(Path::new("c.toml"), TEXT, "members.default_upstream", "no");
        assert_eq!(e.to_string(), "c.toml:12: members.default_upstream: no");
    }
}
