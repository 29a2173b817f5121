//! Where the old config comes from: a directory as given, or
//! `git:REV`, the config directory's content at that revision, written
//! into a private temporary directory (0700, files 0600, so the loader's
//! member-file mode check passes and nobody else reads them) that is
//! removed when the plan is done.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The old config directory, removed on drop when it was made here.
pub struct OldDir {
    pub path: PathBuf,
    /// The revision, when read from git.
    pub rev: Option<String>,
    temporary: bool,
}

impl Drop for OldDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `--from`: `git:REV` (read from the git repository holding
/// `config`) or a directory.
pub fn old_dir(from: &str, config: &Path) -> Result<OldDir, String> {
    match from.strip_prefix("git:") {
        Some(rev) => from_git(config, rev),
        None => Ok(OldDir {
            path: PathBuf::from(from),
            rev: None,
            temporary: false,
        }),
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn from_git(dir: &Path, rev: &str) -> Result<OldDir, String> {
    if rev.is_empty() || rev.starts_with('-') {
        return Err(format!("--from git:{rev}: not a revision"));
    }
    if git(dir, &["rev-parse", "--is-inside-work-tree"]).is_err() {
        return Err(format!(
            "--from git:{rev}: {} is not in a git work tree (give --from a directory instead)",
            dir.display()
        ));
    }
    git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| format!("--from git:{rev}: no such revision in {}", dir.display()))?;
    // Without --full-name, ls-tree lists only the current directory's
    // subtree, relative to it: the config directory as of `rev`.
    let names = git(dir, &["ls-tree", "-r", "-z", "--name-only", rev, "--", "."])?;
    let names: Vec<&str> = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| std::str::from_utf8(n).map_err(|_| "a file name that is not UTF-8".to_string()))
        .collect::<Result<_, _>>()?;
    if names.is_empty() {
        return Err(format!(
            "--from git:{rev}: {} holds no tracked files at that revision",
            dir.display()
        ));
    }
    let old = OldDir {
        path: private_dir()?,
        rev: Some(rev.to_string()),
        temporary: true,
    };
    for name in names {
        let rel = Path::new(name);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!("--from git:{rev}: unexpected path {name}"));
        }
        let bytes = git(dir, &["cat-file", "blob", &format!("{rev}:./{name}")])?;
        write_private(&old.path.join(rel), &bytes)?;
    }
    Ok(old)
}

fn private_dir() -> Result<PathBuf, String> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| format!("random: {e}"))?;
    let p = std::env::temp_dir().join(format!("clawgate-plan-{}", hex::encode(r)));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}
