//! `clawgate restore`: everything is checked before anything is written.
//! Every tar entry must be a regular file (or directory) with a plain
//! relative path (no `/…`, no `..`, no links: a crafted tar must not write
//! outside `--to`), every file must match the manifest's SHA-256, and a
//! non-empty target needs `--force`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::manifest::{self, Manifest, GATEWAY_CONFIG, MANIFEST};
use super::verify;
use super::RestoreArgs;
use crate::cli::fsutil;

pub fn run_restore(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    let m = match restore(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("clawgate: restore: {e}");
            return ExitCode::from(2);
        }
    };
    let report = if args.verify {
        Some(verify::cold_start(&args.to, &m, started))
    } else {
        None
    };
    print!("{}", verify::render(&args, &m, report.as_ref()));
    match report {
        Some(r) if !r.ok() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

fn restore(args: &RestoreArgs) -> Result<Manifest, String> {
    let bytes = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let files = read_entries(&bytes)?;
    let m = check(&files)?;
    ensure_target(&args.to, args.force)?;
    for e in &m.files {
        write(&args.to, e, &files[&e.path])?;
    }
    Ok(m)
}

/// Every entry of the tar, refused whole on the first unsafe one.
fn read_entries(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in ar.entries().map_err(|e| format!("not a tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("not a tar: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let shown = path.display().to_string();
        if !manifest::is_plain_relative(&path) {
            return Err(format!("entry '{shown}' is an absolute path or leaves the directory (..); refusing the whole backup"));
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular => {}
            tar::EntryType::Directory => continue,
            t => return Err(format!("entry '{shown}' is a {t:?}, not a regular file (links are refused); refusing the whole backup")),
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("{shown}: {e}"))?;
        let key = normal(&path);
        if out.insert(key, data).is_some() {
            return Err(format!(
                "entry '{shown}' appears twice; refusing the whole backup"
            ));
        }
    }
    Ok(out)
}

/// `a/./b` as `a/b`.
fn normal(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The manifest, once every file in it is present and matches, and no
/// file is in the tar that the manifest does not list.
fn check(files: &BTreeMap<String, Vec<u8>>) -> Result<Manifest, String> {
    let raw = files
        .get(MANIFEST)
        .ok_or_else(|| format!("no {MANIFEST} in the tar: not a clawgate backup"))?;
    let m: Manifest = serde_json::from_slice(raw).map_err(|e| format!("{MANIFEST}: {e}"))?;
    for e in &m.files {
        if !manifest::is_plain_relative(Path::new(&e.path)) || normal(Path::new(&e.path)) != e.path
        {
            return Err(format!(
                "{MANIFEST} lists '{}', not a plain relative path",
                e.path
            ));
        }
        let data = files
            .get(&e.path)
            .ok_or_else(|| format!("{} is in the manifest but not in the tar", e.path))?;
        let sum = hex::encode(clawgate_policy::identity::sha256(data));
        if sum != e.sha256 || data.len() as u64 != e.size {
            return Err(format!(
                "{}: SHA-256 {sum} does not match the manifest's {} (the backup is damaged or was altered); nothing written",
                e.path, e.sha256
            ));
        }
    }
    if let Some(extra) = files
        .keys()
        .find(|k| *k != MANIFEST && !m.files.iter().any(|e| &e.path == *k))
    {
        return Err(format!(
            "{extra} is in the tar but not in the manifest; nothing written"
        ));
    }
    Ok(m)
}

fn ensure_target(to: &Path, force: bool) -> Result<(), String> {
    match std::fs::read_dir(to) {
        Ok(mut rd) => {
            if rd.next().is_some() && !force {
                return Err(format!(
                    "{} is not empty; nothing written (--force replaces the backup's files in it)",
                    to.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_dir(to),
        Err(e) => Err(format!("{}: {e}", to.display())),
    }
}

/// A directory only its owner can enter: member files hold token hashes.
fn create_dir(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn write(to: &Path, e: &manifest::Entry, data: &[u8]) -> Result<(), String> {
    let path = to.join(&e.path);
    let parent = path.parent().unwrap_or(to);
    if !parent.exists() {
        create_dir(parent)?;
    }
    // A symlink already in the target could carry the write elsewhere.
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} is a symlink in the target; refusing to write through it",
            path.display()
        ));
    }
    let meta = owner(parent, e);
    fsutil::write_atomic_as(&path, data, meta).map_err(|err| format!("{}: {err}", path.display()))
}

/// The recorded owner when running as root and both ids exist here; else
/// the target directory's (as any new file).
fn owner(parent: &Path, e: &manifest::Entry) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let mode = e.mode & 0o7777;
    let root = rustix::process::geteuid().is_root();
    if root
        && e.path != GATEWAY_CONFIG
        && manifest::user_name(e.uid).is_some()
        && manifest::group_name(e.gid).is_some()
    {
        return (e.uid, e.gid, mode);
    }
    match std::fs::metadata(parent) {
        Ok(m) => (m.uid(), m.gid(), mode),
        Err(_) => (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
            mode,
        ),
    }
}
