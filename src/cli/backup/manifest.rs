//! What a backup holds and says about itself: the set of files that
//! restores service (read from `clawgate.toml`, never the access log) and
//! `MANIFEST.json`, each file's SHA-256, mode, owner and size, and the
//! newest change in the set (the RPO of a restore).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cli::accounts::Account;

pub const MANIFEST: &str = "MANIFEST.json";
pub const GATEWAY_CONFIG: &str = "gateway-config.json5";

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Manifest {
    pub format: u32,
    pub clawgate_version: String,
    /// RFC 3339: when the backup was taken.
    pub created: String,
    /// RFC 3339: the newest mtime among the files (what a restore loses is
    /// everything after it).
    pub newest_change: String,
    pub files: Vec<Entry>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Entry {
    /// Relative to the config directory.
    pub path: String,
    pub sha256: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
}

/// One file of the set, read.
pub struct File {
    pub entry: Entry,
    pub contents: Vec<u8>,
}

/// The relative paths of the restorable set of `dir`: `clawgate.toml`, the
/// member files, the TLS files and the session key the config names. A
/// path outside `dir` is refused: a restore to another directory could not
/// put it back where the config expects it without writing outside `--to`.
pub fn set_of(dir: &Path) -> Result<Vec<String>, String> {
    let toml_path = dir.join("clawgate.toml");
    let text =
        fs::read_to_string(&toml_path).map_err(|e| format!("{}: {e}", toml_path.display()))?;
    let v: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", toml_path.display()))?;
    let mut out = vec!["clawgate.toml".to_string()];
    let get = |table: &str, key: &str| {
        v.get(table)
            .and_then(|t| t.get(key))
            .and_then(|x| x.as_str())
            .map(str::to_string)
    };
    let named = [
        ("listen", "tls_cert"),
        ("listen", "tls_key"),
        ("listen", "client_ca"),
        ("session", "key_file"),
    ];
    for (table, key) in named {
        if let Some(p) = get(table, key) {
            out.push(inside(dir, &p, &format!("{table}.{key}"))?);
        }
    }
    let members = get("members", "dir").unwrap_or_else(|| "members".into());
    let members_rel = inside(dir, &members, "members.dir")?;
    let mdir = dir.join(&members_rel);
    let mut names: Vec<String> = fs::read_dir(&mdir)
        .map_err(|e| format!("{}: {e}", mdir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".env"))
        .collect();
    names.sort();
    out.extend(names.into_iter().map(|n| format!("{members_rel}/{n}")));
    out.dedup();
    Ok(out)
}

/// `p` (as written in clawgate.toml) relative to `dir`, or an error
/// naming the key when it points outside.
fn inside(dir: &Path, p: &str, key: &str) -> Result<String, String> {
    let path = Path::new(p);
    let rel: PathBuf = if path.is_absolute() {
        let canon_dir = fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match path
            .strip_prefix(&canon_dir)
            .or_else(|_| path.strip_prefix(dir))
        {
            Ok(r) => r.to_path_buf(),
            Err(_) => return Err(outside(key, p)),
        }
    } else {
        path.to_path_buf()
    };
    if !is_plain_relative(&rel) {
        return Err(outside(key, p));
    }
    Ok(rel.to_string_lossy().into_owned())
}

fn outside(key: &str, p: &str) -> String {
    format!(
        "{key} = \"{p}\" is outside the config directory; backup takes only files under it (move the file into the directory, name it relatively, and back up again)"
    )
}

/// Relative, and no `..`, root or prefix component: safe to join under a
/// directory (also the test every tar entry passes before restore).
pub fn is_plain_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Read `rel` under `dir` and describe it.
pub fn read(dir: &Path, rel: &str) -> Result<File, String> {
    let path = dir.join(rel);
    let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let contents = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entry = Entry {
        path: rel.to_string(),
        sha256: hex::encode(clawgate_policy::identity::sha256(&contents)),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        user: user_name(meta.uid()),
        group: group_name(meta.gid()),
        size: contents.len() as u64,
        mtime: meta.mtime().max(0) as u64,
    };
    Ok(File { entry, contents })
}

pub fn rfc3339_secs(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

pub fn build(files: &[File]) -> Manifest {
    let newest = files.iter().map(|f| f.entry.mtime).max().unwrap_or(0);
    Manifest {
        format: 1,
        clawgate_version: env!("CARGO_PKG_VERSION").to_string(),
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        newest_change: rfc3339_secs(newest),
        files: files.iter().map(|f| f.entry.clone()).collect(),
    }
}

/// The passwd name of `uid`, when the host has one.
pub fn user_name(uid: u32) -> Option<String> {
    Account::lookup(&uid.to_string())
        .ok()
        .filter(|a| a.name != uid.to_string())
        .map(|a| a.name)
}

/// The `/etc/group` name of `gid`, when the host has one.
pub fn group_name(gid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        f.next()?;
        (f.next()?.parse::<u32>().ok()? == gid).then(|| name.to_string())
    })
}
