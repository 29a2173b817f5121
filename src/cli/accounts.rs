//! Who the proxy runs as, and whether that account can read a file: the
//! service user is the owner of `clawgate.toml` unless `--user` names it.
//! Read from `/etc/passwd` and `/etc/group` (no `unsafe` for getpwnam); a
//! numeric `--user UID` works for accounts those files do not list.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// An account as far as file permissions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The name, or the number when no passwd entry has it.
    pub name: String,
    pub uid: u32,
    /// Primary and supplementary groups (empty when unknown).
    pub gids: Vec<u32>,
}

impl Account {
    /// `NAME` or `UID` as given to `--user`.
    pub fn lookup(user: &str) -> Result<Account, String> {
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = fs::read_to_string("/etc/group").unwrap_or_default();
        let entry = passwd_entries(&passwd).find(|(name, uid, _)| {
            *name == user || (user.parse::<u32>().ok() == Some(*uid) && !user.is_empty())
        });
        match entry {
            Some((name, uid, gid)) => Ok(Account {
                name: name.to_string(),
                uid,
                gids: groups_of(&group, name, gid),
            }),
            None => match user.parse::<u32>() {
                Ok(uid) => Ok(Account {
                    name: uid.to_string(),
                    uid,
                    gids: Vec::new(),
                }),
                Err(_) => Err(format!(
                    "--user {user}: no such user in /etc/passwd (give the numeric UID)"
                )),
            },
        }
    }

    /// The account owning `path` (the service user owns `clawgate.toml`).
    pub fn owner_of(path: &Path) -> Result<Account, String> {
        let uid = fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .uid();
        Account::lookup(&uid.to_string())
    }

    /// Can this account read `path`, by its owner/group/other bits? Root
    /// reads everything. Directories on the way must be searchable too;
    /// callers check the members directory separately.
    pub fn can_read(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if self.uid == 0 {
            return true;
        }
        if meta.uid() == self.uid {
            mode & 0o400 != 0
        } else if self.gids.contains(&meta.gid()) {
            mode & 0o040 != 0
        } else {
            mode & 0o004 != 0
        }
    }

    /// Can it list a directory and open the files in it (r and x)?
    pub fn can_list(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if self.uid == 0 {
            return true;
        }
        let bits = if meta.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&meta.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & 0o5 == 0o5
    }
}

/// `(name, uid, gid)` of each well-formed passwd line.
fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let uid = f.nth(1)?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((name, uid, gid))
    })
}

/// The primary group plus every group listing `name` as a member.
fn groups_of(group: &str, name: &str, primary: u32) -> Vec<u32> {
    let mut gids = vec![primary];
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            continue;
        };
        if f[3].split(',').any(|m| m == name) && !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_give_uid_and_groups() {
        let p = "root:x:0:0:root:/root:/bin/bash\nclawgate:x:990:985::/var/lib/clawgate:/usr/sbin/nologin\nbroken\n";
        let e: Vec<_> = passwd_entries(p).collect();
        assert_eq!(e, vec![("root", 0, 0), ("clawgate", 990, 985)]);
        let g = "clawgate:x:985:\nssl-cert:x:110:clawgate,www\nother:x:5:www\n";
        assert_eq!(groups_of(g, "clawgate", 985), vec![985, 110]);
    }

    #[test]
    fn unknown_numeric_user_is_accepted_and_a_bad_name_is_not() {
        let a = Account::lookup("4000123").unwrap();
        assert_eq!((a.uid, a.gids.is_empty()), (4000123, true));
        assert!(Account::lookup("no-such-user-here")
            .unwrap_err()
            .contains("--user"));
    }
}
