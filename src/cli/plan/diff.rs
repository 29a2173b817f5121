//! The values behind a change: `config::changes` says which members and
//! keys differ (kinds only, as the reload log line needs); this module
//! puts old and new values beside them for the ticket. Tokens appear by
//! token ID and expiry, certificates by a fingerprint prefix: never a
//! token hash or value.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::changes::{self, MEMBER_KEYS};
use crate::config::{Snapshot, BASE_FILE};
use clawgate_policy::member::Member;

/// A member added, removed or changed, with each differing key.
#[derive(Serialize, Debug)]
pub struct MemberChange {
    pub member: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub keys: Vec<KeyChange>,
}

/// One key's old and new value (`-`: absent).
#[derive(Serialize, Debug)]
pub struct KeyChange {
    pub key: &'static str,
    pub old: String,
    pub new: String,
}

/// One `clawgate.toml` setting's old and new value, and when it applies.
#[derive(Serialize, Debug)]
pub struct SettingChange {
    pub setting: String,
    pub old: String,
    pub new: String,
    /// `reload` or `restart`.
    pub applies: &'static str,
}

/// Members added, removed and changed between `old` and `new`.
pub fn members(old: &Snapshot, new: &Snapshot) -> Vec<MemberChange> {
    let c = changes::between(old, new);
    let mut out = Vec::new();
    let all = |s: &Snapshot, name: &str, is_old: bool| {
        let (_, m) = s.member_by_name(name).expect("named by changes::between");
        MEMBER_KEYS
            .iter()
            .map(|&key| {
                let v = value(s, m, key);
                let (old, new) = if is_old { (v, dash()) } else { (dash(), v) };
                KeyChange { key, old, new }
            })
            .filter(|k| k.old != "-" || k.new != "-")
            .collect()
    };
    for name in &c.added {
        let keys = all(new, name, false);
        out.push(member_change(name, "added", keys));
    }
    for name in &c.removed {
        let keys = all(old, name, true);
        out.push(member_change(name, "removed", keys));
    }
    for (name, keys) in &c.changed {
        let (_, a) = old.member_by_name(name).expect("in both");
        let (_, b) = new.member_by_name(name).expect("in both");
        let keys = keys
            .iter()
            .map(|&key| KeyChange {
                key,
                old: value(old, a, key),
                new: value(new, b, key),
            })
            .collect();
        out.push(member_change(name, "changed", keys));
    }
    out.sort_by(|a, b| a.member.cmp(&b.member));
    out
}

fn member_change(name: &str, change: &'static str, keys: Vec<KeyChange>) -> MemberChange {
    MemberChange {
        member: name.to_string(),
        change,
        keys,
    }
}

fn dash() -> String {
    "-".to_string()
}

/// A member key's value as the ticket shows it; `-` when empty.
fn value(s: &Snapshot, m: &Member, key: &str) -> String {
    let list: Vec<String> = match key {
        "TOKEN_SHA256" => {
            let mut t: Vec<_> = m.tokens.iter().collect();
            t.sort_by(|a, b| a.id.cmp(&b.id));
            t.iter()
                .map(|t| match t.expires {
                    Some(e) => format!("{} (expires {})", t.id, crate::cli::rfc3339(e)),
                    None => t.id.clone(),
                })
                .collect()
        }
        "CERT_SHA256" => m
            .cert_sha256
            .iter()
            .map(|c| format!("{}…", &hex::encode(c)[..16]))
            .collect(),
        "CERT_SAN" => m.cert_san.clone(),
        "ORIGINS" => m.origins.patterns().iter().map(|p| p.to_string()).collect(),
        "EGRESS_CIDRS" => m.egress.nets().iter().map(|n| n.to_string()).collect(),
        "UPSTREAM" => vec![s.upstreams[m.upstream].name.clone()],
        "SCOPES" => m.scopes.clone(),
        "MODE" => vec![m.mode.as_str().to_string()],
        _ => Vec::new(),
    };
    if list.is_empty() {
        dash()
    } else {
        list.join(" ")
    }
}

/// Every `clawgate.toml` setting whose written value differs (dotted
/// keys; `-`: not set, so the default), plus TLS files whose content
/// changed under an unchanged path.
pub fn settings(old: &Snapshot, new: &Snapshot) -> Result<Vec<SettingChange>, String> {
    let (a, b) = (flat(old)?, flat(new)?);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let (o, n) = (a.get(k), b.get(k));
        if o != n {
            out.push(SettingChange {
                setting: k.clone(),
                old: o.cloned().unwrap_or_else(dash),
                new: n.cloned().unwrap_or_else(dash),
                applies: applies(k),
            });
        }
    }
    out.extend(tls_content(old, new));
    Ok(out)
}

fn applies(key: &str) -> &'static str {
    if changes::needs_restart(key) {
        "restart"
    } else {
        "reload"
    }
}

/// `clawgate.toml` of a loaded snapshot as dotted key → value.
fn flat(s: &Snapshot) -> Result<BTreeMap<String, String>, String> {
    let path = s.dir.join(BASE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    flatten("", &v, &mut out);
    Ok(out)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// TLS files (server certificate, key, client CA) whose bytes differ
/// while the setting naming them did not: new material all the same.
fn tls_content(old: &Snapshot, new: &Snapshot) -> Vec<SettingChange> {
    let (Some(a), Some(b)) = (&old.listen.tls, &new.listen.tls) else {
        return Vec::new();
    };
    let pairs = [
        ("listen.tls_cert", Some(&a.cert), Some(&b.cert)),
        ("listen.tls_key", Some(&a.key), Some(&b.key)),
        (
            "listen.client_ca",
            a.client_ca.as_ref(),
            b.client_ca.as_ref(),
        ),
    ];
    let rel = |s: &Snapshot, p: &std::path::Path| p.strip_prefix(&s.dir).unwrap_or(p).to_path_buf();
    pairs
        .into_iter()
        .filter_map(|(key, pa, pb)| {
            let (pa, pb) = (pa?, pb?);
            if rel(old, pa) != rel(new, pb) {
                return None; // the path setting's own row says it
            }
            let same = std::fs::read(pa).ok() == std::fs::read(pb).ok();
            (!same).then(|| SettingChange {
                setting: format!("{key} (file content)"),
                old: "previous file".into(),
                new: "new content".into(),
                applies: "reload",
            })
        })
        .collect()
}
