//! Writing config files from the command line without breaking the running
//! proxy: a reader (the proxy's reload, a crash mid-write) sees the old file
//! or the new one, never a torn one, and the file keeps its owner, group and
//! mode. Commands run as root on files owned by the service user; a plain
//! `File::create` + rename would leave them `root:root`, unreadable by the
//! proxy, and every later reload refused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a file written where none existed: member files hold token
/// hashes and the loader refuses anything group- or world-readable.
pub const NEW_FILE_MODE: u32 = 0o600;

/// Replace (or create) `path` with `contents`, atomically: a temp file in the
/// same directory, written and fsynced, given the original's owner, group
/// and mode (a new file: the directory's owner and group, mode 0600), then
/// renamed over `path`, and the directory fsynced so the rename survives a
/// crash. A symlink is followed: its target is replaced, the link kept.
///
/// When the owner cannot be kept (not root, file owned by someone else) it
/// fails and `path` is untouched: a file silently changing hands is what
/// this exists to prevent.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let path = resolve_symlink(path)?;
    let dir = parent_dir(&path);
    let (uid, gid, mode) = match fs::metadata(&path) {
        Ok(m) => (m.uid(), m.gid(), m.mode() & 0o7777),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let d = fs::metadata(&dir)?;
            (d.uid(), d.gid(), NEW_FILE_MODE)
        }
        Err(e) => return Err(e),
    };
    let tmp = write_temp(&path, contents, (uid, gid, mode))?;
    let result = fs::rename(&tmp, &path).and_then(|()| File::open(&dir)?.sync_all());
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create `path` with `contents`, atomically, failing with `AlreadyExists`
/// (and touching nothing) when it exists: the directory's owner and group,
/// mode 0600. A hard link, unlike a rename, never replaces a file that
/// appeared since the caller looked.
pub fn create_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let d = fs::metadata(&dir)?;
    let tmp = write_temp(path, contents, (d.uid(), d.gid(), NEW_FILE_MODE))?;
    let result = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    result?;
    File::open(&dir)?.sync_all()
}

/// Write `path` atomically (temp file, fsync, rename, directory fsync)
/// with exactly this owner, group and mode, replacing whatever was there:
/// `restore` puts back the owners and modes a backup recorded.
pub fn write_atomic_as(path: &Path, contents: &[u8], meta: (u32, u32, u32)) -> io::Result<()> {
    let dir = parent_dir(path);
    let tmp = write_temp(path, contents, meta)?;
    let result = fs::rename(&tmp, path).and_then(|()| File::open(&dir)?.sync_all());
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fsynced temp file beside `path` holding `contents`, with owner, group
/// and mode `meta`; removed again if any step fails.
fn write_temp(path: &Path, contents: &[u8], meta: (u32, u32, u32)) -> io::Result<PathBuf> {
    let (uid, gid, mode) = meta;
    let tmp = temp_name(path)?;
    let result = (|| {
        // 0600 from the first byte: the contents are never readable by
        // others, whatever the umask.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        let m = f.metadata()?;
        if (m.uid(), m.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot give the new file the owner {uid}:{gid} of {} ({e}); run this as root or as that user",
                        path.display()
                    ),
                )
            })?;
        }
        // After fchown, which clears set-id bits.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Remove `path` (a symlink itself, not its target) and fsync the
/// directory, so the removal survives a crash.
pub fn remove(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    File::open(parent_dir(path))?.sync_all()
}

/// The file a symlink finally points to (relative targets resolved against
/// the link's directory); `path` itself otherwise.
fn resolve_symlink(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(d) if target.is_relative() => d.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// `.NAME.<random>.tmp` beside `path`: hidden and not `*.env`, so the
/// proxy's loader never takes it for a member file.
fn temp_name(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{}: not a file name", path.display())))?;
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        hex::encode(r)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(p: &Path) -> (u32, u32, u32) {
        let m = fs::metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }

    fn am_root() -> bool {
        fs::metadata("/proc/self").unwrap().uid() == 0
    }

    #[test]
    fn replaces_contents_keeping_owner_group_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("alice.env");
        fs::write(&p, "old\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let owner = if am_root() { 65534 } else { meta(&p).0 };
        if am_root() {
            std::os::unix::fs::chown(&p, Some(owner), Some(owner)).unwrap();
        }
        let before = meta(&p);
        write_atomic(&p, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new\n");
        assert_eq!(meta(&p), before);
        assert_eq!(before.2, 0o640);
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }

    #[test]
    fn a_new_file_takes_the_directory_owner_and_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        if am_root() {
            std::os::unix::fs::chown(d.path(), Some(65534), Some(65534)).unwrap();
        }
        let p = d.path().join("bob.env");
        write_atomic(&p, b"x\n").unwrap();
        let dm = fs::metadata(d.path()).unwrap();
        assert_eq!(meta(&p), (dm.uid(), dm.gid(), 0o600));
    }

    #[test]
    fn create_refuses_an_existing_file_and_leaves_it_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("carol.env");
        create_atomic(&p, b"first\n").unwrap();
        assert_eq!(meta(&p).2, 0o600);
        let e = create_atomic(&p, b"second\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&p).unwrap(), "first\n");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_symlink_is_kept_and_its_target_replaced() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("real.env");
        fs::write(&target, "old\n").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.path().join("alice.env");
        std::os::unix::fs::symlink("real.env", &link).unwrap();
        write_atomic(&link, b"new\n").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
    }
}
