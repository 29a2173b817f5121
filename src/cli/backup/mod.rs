//! `clawgate backup` and `clawgate restore`: the backup drill of issue #34.
//! A backup is a tar (mode 0600) of the smallest set that restores service,
//! with `MANIFEST.json` (SHA-256, mode, owner of each file, newest change)
//! and the gateway-config block the config implies. `restore` checks every
//! byte against the manifest before writing one, then can cold-start the
//! restored config on loopback ports and report RTO and RPO.

pub mod manifest;
pub mod restore;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{fsutil, Format};
use manifest::{File, GATEWAY_CONFIG, MANIFEST};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Config directory (holds clawgate.toml and members/).
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// The tar to write (mode 0600, replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_backup(args: BackupArgs) -> ExitCode {
    match backup(&args) {
        Ok(m) => {
            println!(
                "backup: {} ({} files, newest change {})",
                args.out.display(),
                m.files.len(),
                m.newest_change
            );
            for f in &m.files {
                println!("  {:04o} {:>7}  {}", f.mode, f.size, f.path);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clawgate: backup: {e}");
            ExitCode::from(2)
        }
    }
}

fn backup(args: &BackupArgs) -> Result<manifest::Manifest, String> {
    // The config must load: a backup of a set that cannot start restores
    // nothing.
    let snap = crate::config::load(&args.config).map_err(|e| {
        format!(
            "{e}; fix the config first (`clawgate check --config {}`)",
            args.config.display()
        )
    })?;
    let files = manifest::set_of(&args.config)?
        .iter()
        .map(|rel| manifest::read(&args.config, rel))
        .collect::<Result<Vec<File>, String>>()?;
    let mut m = manifest::build(&files);
    let gateway = gateway_block(&snap);
    let gw = manifest::File {
        entry: manifest::Entry {
            path: GATEWAY_CONFIG.into(),
            sha256: hex::encode(clawgate_policy::identity::sha256(gateway.as_bytes())),
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: gateway.len() as u64,
            mtime: files.iter().map(|f| f.entry.mtime).max().unwrap_or(0),
        },
        contents: gateway.into_bytes(),
    };
    m.files.push(gw.entry.clone());
    let json = serde_json::to_vec_pretty(&m).map_err(|e| e.to_string())?;
    let mut tar = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    append(&mut tar, MANIFEST, &json, 0o600, now)?;
    for f in files.iter().chain(std::iter::once(&gw)) {
        append(
            &mut tar,
            &f.entry.path,
            &f.contents,
            f.entry.mode,
            f.entry.mtime,
        )?;
    }
    let bytes = tar.into_inner().map_err(|e| e.to_string())?;
    let (uid, gid) = owner_for_new(&args.out);
    fsutil::write_atomic_as(&args.out, &bytes, (uid, gid, 0o600))
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(m)
}

/// The gateway-config block of each upstream, keyed by upstream name
/// (JSON, which JSON5 readers take as is).
fn gateway_block(snap: &crate::config::Snapshot) -> String {
    use crate::cli::gateway_config::Expected;
    let mut all = serde_json::Map::new();
    for (i, u) in snap.upstreams.iter().enumerate() {
        all.insert(u.name.clone(), Expected::build(snap, i).to_json());
    }
    let body = serde_json::to_string_pretty(&all).unwrap_or_default();
    format!("// The OpenClaw gateway block per upstream, as `clawgate gateway-config --upstream NAME` prints it.\n{body}\n")
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    contents: &[u8],
    mode: u32,
    mtime: u64,
) -> Result<(), String> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(contents.len() as u64);
    h.set_mode(mode);
    h.set_mtime(mtime);
    tar.append_data(&mut h, path, contents)
        .map_err(|e| format!("{path}: {e}"))
}

/// The caller's own ids (a new file belongs to whoever runs the command).
fn owner_for_new(out: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    match std::fs::metadata(out).or_else(|_| std::fs::metadata(&dir)) {
        // Keep an existing backup's owner when root replaces it.
        Ok(m) if uid == 0 => (m.uid(), m.gid()),
        _ => (uid, gid),
    }
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The tar written by `clawgate backup`.
    pub file: PathBuf,
    /// The directory to restore into (created when missing).
    #[arg(long)]
    pub to: PathBuf,
    /// Write into a non-empty directory (files of the backup are replaced).
    #[arg(long)]
    pub force: bool,
    /// Cold-start the restored config on loopback ports, explain each
    /// member, and report RTO and RPO.
    #[arg(long)]
    pub verify: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}
