//! Where `clawgate.toml` is and what it says, for the functions that
//! build its tables.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where `clawgate.toml` is and what it says: paths in it are relative
/// to its directory, and an error names a key's line in its text.
pub(super) struct Cx<'a> {
    pub dir: &'a Path,
    pub file: &'a Path,
    pub text: &'a str,
}

impl Cx<'_> {
    pub fn rel(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    pub fn key_err(&self, key: &str, why: String) -> ConfigError {
        ConfigError::toml_key(self.file, self.text, key, why)
    }
}
