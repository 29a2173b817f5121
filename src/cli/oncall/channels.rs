//! Per-member channel status for the on-call packet: when each member was
//! last let through and last refused (and why), their open WebSockets, and
//! each token's expiry and last use. From the running instance's
//! `/metrics`, joined with the members this config defines.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::admin_client::Sample;
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
    fn of<'a>(
        samples: &'a [Sample],
        name: &'a str,
        member: &'a str,
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        samples.iter().filter(move |s| {
            s.name == name && s.labels.get("member").map(String::as_str) == Some(member)
        })
    }
    snap.members
        .iter()
        .map(|m| Channel {
            member: m.name.clone(),
            last_allowed: of(
                samples,
                "clawgate_member_last_allowed_timestamp_seconds",
                &m.name,
            )
            .map(|s| s.value)
            .fold(None, max)
            .map(rfc3339),
            last_denial: of(
                samples,
                "clawgate_member_last_denial_timestamp_seconds",
                &m.name,
            )
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .map(|s| Denial {
                at: rfc3339(s.value),
                reason: s.labels.get("reason").cloned().unwrap_or_default(),
            }),
            websockets_open: of(samples, "clawgate_websockets_open", &m.name)
                .map(|s| s.value as u64)
                .sum(),
            tokens: m
                .tokens
                .iter()
                .map(|t| Token {
                    token_id: t.id.clone(),
                    expires: t
                        .expires
                        .map(|e| humantime::format_rfc3339_seconds(e).to_string()),
                    expired: t.expired_at(now),
                    last_used: of(
                        samples,
                        "clawgate_token_last_used_timestamp_seconds",
                        &m.name,
                    )
                    .filter(|s| s.labels.get("token_id") == Some(&t.id))
                    .map(|s| s.value)
                    .fold(None, max)
                    .map(rfc3339),
                })
                .collect(),
        })
        .collect()
}

fn max(acc: Option<f64>, v: f64) -> Option<f64> {
    Some(acc.map_or(v, |a| a.max(v)))
}

fn rfc3339(secs: f64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0.0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
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
