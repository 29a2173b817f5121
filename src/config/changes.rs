//! What a reload changes, said without values: which members were added,
//! removed or changed (and in which of their keys), and which changed
//! settings only apply at the next restart. Pure: two snapshots in, a list
//! out. Kinds, never values, so the log line can never carry a token hash
//! or a certificate fingerprint.

use std::net::SocketAddr;

use super::{Log, Snapshot, Upstream};
use clawgate_policy::member::Member;

/// The differences between the running snapshot and a new one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Member name and the keys that differ, in file-key order.
    pub changed: Vec<(String, Vec<&'static str>)>,
    /// Settings of `clawgate.toml` that differ and are read only at start.
    pub needs_restart: Vec<&'static str>,
}

impl Changes {
    pub fn members_touched(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }

    /// `carol` / `bob` / `alice(ORIGINS,TOKEN_SHA256)`: one field per kind
    /// for the log line, `-` when empty.
    pub fn summary(&self) -> (String, String, String) {
        let join = |v: Vec<String>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(" ")
            }
        };
        let changed = self
            .changed
            .iter()
            .map(|(name, keys)| format!("{name}({})", keys.join(",")))
            .collect();
        (
            join(self.added.clone()),
            join(self.removed.clone()),
            join(changed),
        )
    }
}

/// Compare `old` (running) with `new` (just loaded).
pub fn between(old: &Snapshot, new: &Snapshot) -> Changes {
    let mut out = Changes::default();
    for m in &new.members {
        match old.member_by_name(&m.name) {
            None => out.added.push(m.name.clone()),
            Some((_, was)) => {
                let keys = member_keys(was, &old.upstreams, m, &new.upstreams);
                if !keys.is_empty() {
                    out.changed.push((m.name.clone(), keys));
                }
            }
        }
    }
    for m in &old.members {
        if new.member_by_name(&m.name).is_none() {
            out.removed.push(m.name.clone());
        }
    }
    out.needs_restart = restart_settings(old, new);
    out
}

/// Every member-file key [`between`] compares, in the order it names them.
pub const MEMBER_KEYS: &[&str] = super::members::KEYS;

/// The member-file keys whose meaning differs between `a` and `b`.
fn member_keys(
    a: &Member,
    a_ups: &[Upstream],
    b: &Member,
    b_ups: &[Upstream],
) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let tokens = |m: &Member| {
        let mut t: Vec<_> = m.tokens.iter().map(|t| (t.sha256, t.expires)).collect();
        t.sort();
        t
    };
    if tokens(a) != tokens(b) {
        keys.push("TOKEN_SHA256");
    }
    if sorted(&a.cert_sha256) != sorted(&b.cert_sha256) {
        keys.push("CERT_SHA256");
    }
    if sorted(&a.cert_san) != sorted(&b.cert_san) {
        keys.push("CERT_SAN");
    }
    let origins = |m: &Member| {
        sorted(
            &m.origins
                .patterns()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
    };
    if origins(a) != origins(b) {
        keys.push("ORIGINS");
    }
    if a.egress.nets() != b.egress.nets() {
        keys.push("EGRESS_CIDRS");
    }
    if a_ups[a.upstream].name != b_ups[b.upstream].name {
        keys.push("UPSTREAM");
    }
    if a.scopes != b.scopes {
        keys.push("SCOPES");
    }
    if a.mode != b.mode {
        keys.push("MODE");
    }
    keys
}

fn sorted<T: Clone + Ord>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The `clawgate.toml` settings [`AtStart`] compares: a change to one of
/// them waits for a restart, any other setting applies on reload.
pub const AT_START: [&str; 6] = [
    "listen.addr",
    "admin.addr",
    "log.access",
    "log.max_bytes",
    "log.keep",
    "log.level",
];

/// Whether a change to the `clawgate.toml` setting `key` (dotted, as in
/// `log.level`) applies only at the next restart.
pub fn needs_restart(key: &str) -> bool {
    AT_START.contains(&key)
}

/// Settings the process reads once, at start: the listening sockets and
/// the log sinks. Everything else (TLS files, upstreams, public routes,
/// trusted proxies, timeouts, limits, sessions, members) applies to the
/// next connection or request after a reload. The running process keeps
/// these (not the whole first snapshot) to say what a restart would change.
#[derive(Clone, Debug)]
pub struct AtStart {
    listen: SocketAddr,
    admin: SocketAddr,
    log: Log,
}

impl AtStart {
    pub fn of(s: &Snapshot) -> Self {
        AtStart {
            listen: s.listen.addr,
            admin: s.admin.addr,
            log: s.log.clone(),
        }
    }

    /// The settings `new` changes that only a restart applies.
    pub fn pending(&self, new: &Snapshot) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut differs = |changed: bool, key| {
            if changed {
                out.push(key)
            }
        };
        let [listen, admin, access, max_bytes, keep, level] = AT_START;
        differs(self.listen != new.listen.addr, listen);
        differs(self.admin != new.admin.addr, admin);
        differs(self.log.access != new.log.access, access);
        differs(self.log.max_bytes != new.log.max_bytes, max_bytes);
        differs(self.log.keep != new.log.keep, keep);
        differs(self.log.level != new.log.level, level);
        out
    }
}

fn restart_settings(old: &Snapshot, new: &Snapshot) -> Vec<&'static str> {
    AtStart::of(old).pending(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(dir: &Path) -> Snapshot {
        crate::config::load(dir).unwrap()
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    const BASE: &str = "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n[upstreams.b]\nurl = \"http://127.0.0.1:2\"\n[members]\ndefault_upstream = \"a\"\n";
    const ALICE: &str = "TOKEN_SHA256=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nORIGINS=none\nEGRESS_CIDRS=127.0.0.0/8\n";

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cg-changes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn added_removed_and_changed_members_are_named_with_their_keys() {
        let d = tmp("members");
        write(&d, "clawgate.toml", BASE);
        write(&d, "members/alice.env", ALICE);
        write(&d, "members/bob.env", &ALICE.replace("aaaa", "bbbb"));
        let old = load(&d);
        std::fs::remove_file(d.join("members/bob.env")).unwrap();
        write(&d, "members/carol.env", &ALICE.replace("aaaa", "cccc"));
        write(
            &d,
            "members/alice.env",
            &(ALICE.replace("ORIGINS=none", "ORIGINS=\"none https://a.example\"") + "UPSTREAM=b\n"),
        );
        let c = between(&old, &load(&d));
        assert_eq!(c.added, ["carol"]);
        assert_eq!(c.removed, ["bob"]);
        assert_eq!(
            c.changed,
            [("alice".to_string(), vec!["ORIGINS", "UPSTREAM"])]
        );
        assert!(c.needs_restart.is_empty());
        let (_, _, changed) = c.summary();
        assert_eq!(changed, "alice(ORIGINS,UPSTREAM)");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unchanged_reload_reports_nothing_and_addresses_need_a_restart() {
        let d = tmp("settings");
        write(&d, "clawgate.toml", BASE);
        write(&d, "members/alice.env", ALICE);
        let old = load(&d);
        assert_eq!(between(&old, &load(&d)), Changes::default());
        write(
            &d,
            "clawgate.toml",
            &(BASE.replace("127.0.0.1:0", "127.0.0.1:1") + "[log]\naccess = \"off\"\n"),
        );
        let c = between(&old, &load(&d));
        assert_eq!(c.needs_restart, ["listen.addr", "log.access"]);
        assert!(!c.members_touched());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
