//! Per-member channel status for the on-call packet: when each member was
//! last let through and last refused (and why), their open WebSockets, and
//! each token's expiry and last use. From the running instance's
//! `/metrics`, joined with the members this config defines.

use std::time::SystemTime;

use serde::Serialize;

use super::admin_client::{self, Sample};
use crate::cli::rfc3339;
use crate::config::Snapshot;

#[derive(Serialize, Debug)]
pub struct Channel {
    pub member: String,
    /// RFC 3339, or `None` when not since the instance started.
    pub last_allowed: Option<String>,
    pub last_denial: Option<Denial>,
    pub websockets_open: u64,
    pub tokens: Vec<Token>,
}

#[derive(Serialize, Debug)]
pub struct Denial {
    pub at: String,
    pub reason: String,
}

#[derive(Serialize, Debug)]
pub struct Token {
    pub token_id: String,
    pub expires: Option<String>,
    pub expired: bool,
    pub last_used: Option<String>,
}

pub fn channels(snap: &Snapshot, samples: &[Sample], now: SystemTime) -> Vec<Channel> {
    let newest = |name: &str, labels: &[(&str, &str)]| admin_client::newest(samples, name, labels);
    snap.members
        .iter()
        .map(|m| {
            let member = [("member", m.name.as_str())];
            Channel {
                member: m.name.clone(),
                last_allowed: newest("clawgate_member_last_allowed_timestamp_seconds", &member)
                    .map(admin_client::at),
                last_denial: newest("clawgate_member_last_denial_timestamp_seconds", &member).map(
                    |s| Denial {
                        at: admin_client::at(s),
                        reason: s.labels.get("reason").cloned().unwrap_or_default(),
                    },
                ),
                websockets_open: samples
                    .iter()
                    .filter(|s| s.is("clawgate_websockets_open", &member))
                    .map(|s| s.value as u64)
                    .sum(),
                tokens: m
                    .tokens
                    .iter()
                    .map(|t| Token {
                        token_id: t.id.clone(),
                        expires: t.expires.map(rfc3339),
                        expired: t.expired_at(now),
                        last_used: newest(
                            "clawgate_token_last_used_timestamp_seconds",
                            &[("member", &m.name), ("token_id", &t.id)],
                        )
                        .map(admin_client::at),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The packet's text section.
pub fn text(list: &[Channel], out: &mut String) {
    out.push_str(&format!(
        "  {:<16} {:<22} {:<40} {}\n",
        "member", "last allowed", "last denial", "websockets"
    ));
    for c in list {
        let denial = c
            .last_denial
            .as_ref()
            .map_or("-".to_string(), |d| format!("{} {}", d.at, d.reason));
        out.push_str(&format!(
            "  {:<16} {:<22} {:<40} {}\n",
            c.member,
            c.last_allowed.as_deref().unwrap_or("-"),
            denial,
            c.websockets_open
        ));
        for t in &c.tokens {
            out.push_str(&format!(
                "    {}  expires {}{}  last used {}\n",
                t.token_id,
                t.expires.as_deref().unwrap_or("never"),
                if t.expired { " (EXPIRED)" } else { "" },
                t.last_used.as_deref().unwrap_or("-")
            ));
        }
    }
}
