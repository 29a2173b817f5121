//! Sign-off rows read straight from the files: member file permissions,
//! shared tokens, audit mode, `ORIGINS=*`, token expiries, the backup set.
//! They work even when the loader refuses the config, so a refused file
//! still gets a row that says what is wrong and how to fix it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{
    resolve, rfc3339, row, short, BackupFile, Row, BACKUP, EXPOSURE, KEYS, ROTATION,
    ROTATION_WARNING,
};
use crate::cli::accounts::Account;
use crate::config::{self, raw::RawBase};
use clawgate_policy::member::TokenRecord;

/// A member file as found on disk, read without the loader's refusals.
pub(super) struct FileScan {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) mode: u32,
    pub(super) tokens: Vec<TokenRecord>,
    pub(super) origins: Vec<String>,
    pub(super) audit: bool,
}

pub(super) fn scan_members(dir: &Path) -> Vec<FileScan> {
    let Ok(files) = config::members::member_files(dir) else {
        return Vec::new();
    };
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let mode = fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            let mut scan = FileScan {
                name,
                path: path.clone(),
                mode,
                tokens: Vec::new(),
                origins: Vec::new(),
                audit: false,
            };
            let text = fs::read_to_string(&path).unwrap_or_default();
            for (k, v) in dotenvy::from_read_iter(text.as_bytes()).flatten() {
                match k.as_str() {
                    "TOKEN_SHA256" => {
                        scan.tokens = config::members::parse_tokens(&v).unwrap_or_default()
                    }
                    "ORIGINS" => {
                        scan.origins = config::members::split_list(&v)
                            .map(str::to_string)
                            .collect()
                    }
                    "MODE" => scan.audit = v.trim().eq_ignore_ascii_case("audit"),
                    _ => {}
                }
            }
            scan
        })
        .collect()
}

pub(super) fn permissions_row(scans: &[FileScan], dir: &Path) -> Row {
    let check = "member files readable by their owner only";
    if scans.is_empty() {
        return row(KEYS, check, true, "no member files".into());
    }
    let bad: Vec<String> = scans
        .iter()
        .filter(|s| s.mode & 0o077 != 0)
        .map(|s| {
            format!(
                "{} is {:03o} (group/others can read it): run chmod 600 {}",
                short(&s.path, dir),
                s.mode,
                s.path.display()
            )
        })
        .collect();
    if bad.is_empty() {
        let list: Vec<String> = scans
            .iter()
            .map(|s| format!("{} {:03o}", short(&s.path, dir), s.mode))
            .collect();
        row(KEYS, check, true, list.join(", "))
    } else {
        row(KEYS, check, false, bad.join("; "))
    }
}

/// Can the account the proxy runs as read the members directory and every
/// member file? A file it cannot read makes every reload fail (the proxy
/// keeps its old config and new tokens get 401), so this fails `check`.
pub(super) fn readable_row(
    scans: &[FileScan],
    members_dir: &Path,
    dir: &Path,
    user: Option<&str>,
) -> Row {
    let check = "member files readable by the service user";
    let base = dir.join(config::BASE_FILE);
    let who = match user {
        Some(u) => Account::lookup(u).map(|a| (a, "--user".to_string())),
        None => Account::owner_of(&base).map(|a| (a, format!("owner of {}", config::BASE_FILE))),
    };
    let (account, why) = match who {
        Ok(w) => w,
        Err(e) => {
            return row(
                KEYS,
                check,
                false,
                format!("cannot tell which user the proxy runs as: {e}; pass --user NAME"),
            )
        }
    };
    let user_desc = format!("{} (uid {}, {why})", account.name, account.uid);
    let fix = |p: &Path, what: &str| {
        format!(
            "{} is {what} by {user_desc}: run chown {} {}",
            short(p, dir),
            account.name,
            p.display()
        )
    };
    let mut bad = Vec::new();
    match fs::metadata(members_dir) {
        Ok(m) if !account.can_list(&m) => bad.push(fix(members_dir, "not listable")),
        Ok(_) => {}
        Err(e) => bad.push(format!("{}: {e}", members_dir.display())),
    }
    for s in scans {
        match fs::metadata(&s.path) {
            Ok(m) if !account.can_read(&m) => bad.push(format!(
                "{} (owner uid {} gid {}, {:03o}); reloads would be refused",
                fix(&s.path, "not readable"),
                m.uid(),
                m.gid(),
                m.mode() & 0o777
            )),
            Ok(_) => {}
            Err(e) => bad.push(format!("{}: {e}", s.path.display())),
        }
    }
    if bad.is_empty() {
        row(
            KEYS,
            check,
            true,
            format!(
                "{user_desc} can read {} and its {} member file(s)",
                short(members_dir, dir),
                scans.len()
            ),
        )
    } else {
        row(KEYS, check, false, bad.join("; "))
    }
}

pub(super) fn shared_tokens_row(scans: &[FileScan]) -> Row {
    let check = "no token shared between members";
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in scans {
        for t in &s.tokens {
            let v = owners.entry(t.id.as_str()).or_default();
            if !v.contains(&s.name.as_str()) {
                v.push(&s.name);
            }
        }
    }
    let shared: Vec<String> = owners
        .iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(id, m)| {
            format!(
                "{id} is in {}: each member needs their own (clawgate token new NAME)",
                m.join(" and ")
            )
        })
        .collect();
    if shared.is_empty() {
        row(
            KEYS,
            check,
            true,
            format!(
                "{} token hash(es) across {} member file(s), none shared",
                owners.len(),
                scans.len()
            ),
        )
    } else {
        row(KEYS, check, false, shared.join("; "))
    }
}

pub(super) fn mode_row(scans: &[FileScan]) -> Row {
    let check = "every member enforced (MODE=enforce)";
    let audit: Vec<String> = scans
        .iter()
        .filter(|s| s.audit)
        .map(|s| {
            format!(
                "{}: MODE=audit, enforcement is off (would-deny requests pass; review `clawgate suggest --member {}`, then set MODE=enforce)",
                s.name, s.name
            )
        })
        .collect();
    if audit.is_empty() {
        row(
            KEYS,
            check,
            true,
            format!("{} member(s), all enforce", scans.len()),
        )
    } else {
        row(KEYS, check, false, audit.join("; "))
    }
}

pub(super) fn origins_row(scans: &[FileScan]) -> Row {
    let check = "ORIGINS never allow every origin";
    let bad: Vec<String> = scans
        .iter()
        .flat_map(|s| {
            s.origins
                .iter()
                .filter(|o| o.as_str() == "*" || o.ends_with("://*"))
                .map(move |o| {
                    format!(
                        "{}: ORIGINS has {o}: list the origins the member's browsers use",
                        s.name
                    )
                })
        })
        .collect();
    if bad.is_empty() {
        let n: usize = scans.iter().map(|s| s.origins.len()).sum();
        row(
            EXPOSURE,
            check,
            true,
            format!("{n} explicit ORIGINS entries, no *"),
        )
    } else {
        row(EXPOSURE, check, false, bad.join("; "))
    }
}

pub(super) fn rotation_row(scans: &[FileScan], now: SystemTime) -> Row {
    let check = "no token expires within 24 h without a successor";
    let horizon = now + ROTATION_WARNING;
    let mut bad = Vec::new();
    let mut windows = Vec::new();
    let mut total = 0;
    for s in scans {
        total += s.tokens.len();
        for t in &s.tokens {
            let Some(exp) = t.expires else { continue };
            if exp > horizon {
                continue;
            }
            let successor = s
                .tokens
                .iter()
                .find(|o| o.id != t.id && o.expires.is_none_or(|oe| oe > exp));
            let when = if exp <= now { "expired" } else { "expires" };
            match successor {
                Some(o) => windows.push(format!(
                    "{} {} {when} {} (successor {})",
                    s.name,
                    t.id,
                    rfc3339(exp),
                    o.id
                )),
                None => bad.push(format!(
                    "{} {} {when} {} with no successor: run clawgate token rotate {}",
                    s.name,
                    t.id,
                    rfc3339(exp),
                    s.name
                )),
            }
        }
    }
    if bad.is_empty() {
        let mut ev = format!("{total} token(s), none expiring within 24 h without a successor");
        if !windows.is_empty() {
            ev.push_str(&format!("; rotation windows: {}", windows.join(", ")));
        }
        row(ROTATION, check, true, ev)
    } else {
        row(ROTATION, check, false, bad.join("; "))
    }
}

pub(super) fn backup_set(dir: &Path, raw: Option<&RawBase>, scans: &[FileScan]) -> Vec<BackupFile> {
    let mut paths = vec![dir.join(config::BASE_FILE)];
    paths.extend(scans.iter().map(|s| s.path.clone()));
    if let Some(r) = raw {
        let l = &r.listen;
        for p in [&l.tls_cert, &l.tls_key, &l.client_ca]
            .into_iter()
            .flatten()
        {
            paths.push(resolve(dir, p));
        }
        if let Some(k) = r.session.as_ref().and_then(|s| s.key_file.as_deref()) {
            paths.push(resolve(dir, k));
        }
    }
    paths
        .into_iter()
        .map(|p| BackupFile {
            present: p.is_file(),
            path: p.display().to_string(),
        })
        .collect()
}

/// Files named in the backup row of the table.
const BACKUP_LISTED: usize = 12;

pub(super) fn backup_row(files: &[BackupFile], dir: &Path) -> Row {
    let check = "backup set present";
    let show = |f: &BackupFile| short(Path::new(&f.path), dir);
    let missing: Vec<String> = files.iter().filter(|f| !f.present).map(show).collect();
    if missing.is_empty() {
        // Thousands of member files would make this one cell pages long;
        // `--format json` lists every file.
        let mut list: Vec<String> = files.iter().take(BACKUP_LISTED).map(show).collect();
        if files.len() > BACKUP_LISTED {
            list.push(format!(
                "and {} more (all of them: --format json)",
                files.len() - BACKUP_LISTED
            ));
        }
        row(
            BACKUP,
            check,
            true,
            format!("back up (in {}): {}", dir.display(), list.join(", ")),
        )
    } else {
        row(
            BACKUP,
            check,
            false,
            format!(
                "missing: {} (restore from backup or fix the path in {})",
                missing.join(", "),
                config::BASE_FILE
            ),
        )
    }
}

#[cfg(test)]
mod tests;
