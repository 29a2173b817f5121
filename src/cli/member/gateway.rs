//! The gateway-config change a member add or remove needs: the
//! `gateway-config` block before and after, compared by the same drift
//! code `check --gateway-config` runs against a gateway's real config.

use serde_json::{Map, Value};

use crate::cli::gateway_config::{self, allowlist_drift, keys, Expected};
use crate::config::Snapshot;

/// Print what the OpenClaw gateway behind upstream `upstream` must change
/// (`allowUsers`, `identityScopes`, `allowedOrigins`) now that the members
/// went from `before` to `after`, and those keys as they must read.
pub fn print_change(before: &Snapshot, after: &Snapshot, upstream: &str, member: &str) {
    let (Some(b), Some(a)) = (
        before.upstream_by_name(upstream),
        after.upstream_by_name(upstream),
    ) else {
        return;
    };
    let old = Expected::build(before, b);
    let new = Expected::build(after, a);
    // Notes about this member only (a scope OpenClaw does not know, a
    // wildcard origin); the rest is `gateway-config`'s to say.
    for n in new
        .notes
        .iter()
        .filter(|n| n.starts_with(&format!("{member}:")))
    {
        eprintln!("note: {n}");
    }
    let drift = allowlist_drift(&new, &old.to_json());
    println!("gateway config change (the OpenClaw gateway behind upstream '{upstream}'):");
    if drift.is_empty() {
        println!("  none");
        return;
    }
    for d in &drift {
        println!("  {d}");
    }
    println!(
        "those keys as they must now read (clawgate gateway-config --upstream {upstream} prints the whole block):"
    );
    let block = new.to_json();
    let mut keys_only = Value::Object(Map::new());
    for k in [
        keys::ALLOW_USERS,
        keys::IDENTITY_SCOPES,
        keys::ALLOWED_ORIGINS,
    ] {
        if let Some(v) = gateway_config::get(&block, k) {
            gateway_config::set(&mut keys_only, k, v.clone());
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&keys_only).unwrap_or_default()
    );
}
