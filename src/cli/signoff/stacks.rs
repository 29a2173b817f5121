//! Cross-stack rows for `clawgate check --config A --config B ...`: two
//! clawgates on one host (prod and staging) must not collide on a port or
//! a file, and no credential may be valid in both (a staging token must not
//! open prod). Pure over the loaded snapshots; evidence names stacks and
//! members, never a token hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{read_raw, resolve, row, Row};
use crate::config::{AccessLog, Snapshot};

pub const STACKS: &str = "cross-stack";

/// One stack: its label (the `--config` dir as given) and its snapshot,
/// or `None` when it did not load.
pub struct Stack<'a> {
    pub label: String,
    pub snap: Option<&'a Snapshot>,
}

/// Every cross-stack row, in a fixed order.
pub fn rows(stacks: &[Stack<'_>], now: SystemTime) -> Vec<Row> {
    let unloaded: Vec<&str> = stacks
        .iter()
        .filter(|s| s.snap.is_none())
        .map(|s| s.label.as_str())
        .collect();
    let loaded: Vec<(&str, &Snapshot)> = stacks
        .iter()
        .filter_map(|s| s.snap.map(|n| (s.label.as_str(), n)))
        .collect();
    let mut out = vec![if unloaded.is_empty() {
        row(
            STACKS,
            "every stack loads",
            true,
            format!("{} stacks", stacks.len()),
        )
    } else {
        row(
            STACKS,
            "every stack loads",
            false,
            format!(
                "{} did not load: the rows below leave it out",
                unloaded.join(", ")
            ),
        )
    }];
    out.push(ports_row(&loaded));
    out.push(files_row(&loaded));
    out.push(credentials_row(&loaded, now));
    out
}

/// Owners (stack, what) of each key, for the keys held by more than one
/// stack.
fn shared<K: Ord + Clone>(items: Vec<(K, usize, String)>) -> Vec<(K, Vec<String>)> {
    let mut by: BTreeMap<K, Vec<(usize, String)>> = BTreeMap::new();
    for (k, stack, what) in items {
        by.entry(k).or_default().push((stack, what));
    }
    by.into_iter()
        .filter(|(_, v)| {
            let first = v[0].0;
            v.iter().any(|(s, _)| *s != first)
        })
        .map(|(k, v)| (k, v.into_iter().map(|(_, w)| w).collect()))
        .collect()
}

fn verdict(check: &'static str, clashes: Vec<String>, ok: String) -> Row {
    if clashes.is_empty() {
        row(STACKS, check, true, ok)
    } else {
        row(STACKS, check, false, clashes.join("; "))
    }
}

fn ports_row(stacks: &[(&str, &Snapshot)]) -> Row {
    let mut items = Vec::new();
    for (i, (label, s)) in stacks.iter().enumerate() {
        for (role, addr) in [("listen", s.listen.addr), ("admin", s.admin.addr)] {
            items.push((addr.port(), i, format!("{label} {role} {addr}")));
        }
    }
    let n = items.len();
    let clashes = shared(items)
        .into_iter()
        .map(|(port, who)| format!("port {port} shared: {}", who.join(" and ")))
        .collect();
    verdict(
        "no port shared between stacks",
        clashes,
        format!("{n} listener ports, all distinct"),
    )
}

/// The path as the kernel sees it, so `./x` and `/abs/x` compare equal.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The files a stack writes or keeps secrets in: access log, session key,
/// TLS cert and key, member files.
fn stack_files(s: &Snapshot) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    if let AccessLog::File(p) = &s.log.access {
        files.push(("access log", p.clone()));
    }
    let key_file = read_raw(&s.dir)
        .and_then(|r| r.session)
        .and_then(|x| x.key_file);
    if let Some(k) = key_file {
        files.push(("session key", resolve(&s.dir, &k)));
    }
    if let Some(t) = &s.listen.tls {
        files.push(("TLS cert", t.cert.clone()));
        files.push(("TLS key", t.key.clone()));
    }
    for m in &s.members {
        files.push(("member file", m.file.clone()));
    }
    files
}

fn files_row(stacks: &[(&str, &Snapshot)]) -> Row {
    let mut items = Vec::new();
    for (i, (label, s)) in stacks.iter().enumerate() {
        for (what, p) in stack_files(s) {
            items.push((canonical(&p), i, format!("{label} {what}")));
        }
    }
    let n = items.len();
    let clashes = shared(items)
        .into_iter()
        .map(|(p, who)| format!("{} shared: {}", p.display(), who.join(" and ")))
        .collect();
    verdict(
        "no file shared between stacks",
        clashes,
        format!("{n} files (logs, keys, member files), all distinct"),
    )
}

fn credentials_row(stacks: &[(&str, &Snapshot)], now: SystemTime) -> Row {
    let mut items = Vec::new();
    for (i, (label, s)) in stacks.iter().enumerate() {
        for m in &s.members {
            for t in m.tokens.iter().filter(|t| !t.expired_at(now)) {
                items.push((("token", t.sha256), i, format!("{label} {}", m.name)));
            }
            for c in &m.cert_sha256 {
                let who = format!("{label} {}", m.name);
                items.push((("client certificate", *c), i, who));
            }
        }
    }
    let n = items.len();
    // The key holds the hash; only the kind and the members are shown.
    let clashes = shared(items)
        .into_iter()
        .map(|((kind, _), who)| format!("a {kind} valid in both: {}", who.join(" and ")))
        .collect();
    verdict(
        "no credential valid in two stacks",
        clashes,
        format!("{n} tokens and certificates, each valid in one stack only"),
    )
}
