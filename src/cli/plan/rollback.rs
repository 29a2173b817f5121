//! The way back: the commands that restore the old config, when a token
//! rotation's overlap window closes, and the warning the practice asks
//! for when one change mixes token rotation, TLS material and member
//! policy.

use std::path::Path;

use serde::Serialize;

use super::diff::{MemberChange, SettingChange};
use super::source::OldDir;
use crate::config::Snapshot;

#[derive(Serialize, Debug)]
pub struct Rollback {
    /// Shell commands, in order.
    pub commands: Vec<String>,
    /// Whether the rollback needs a restart (a setting read only at start
    /// changed); otherwise clawgate's reload picks it up.
    pub restart: bool,
    /// Per rotated token: when the old token stops working.
    pub token_windows: Vec<TokenWindow>,
}

#[derive(Serialize, Debug)]
pub struct TokenWindow {
    pub member: String,
    pub token: String,
    /// RFC 3339; null: the old token is gone at reload (no overlap) or,
    /// with `never` true, stays valid.
    pub closes: Option<String>,
    pub never: bool,
}

pub fn of(
    from: &str,
    old_dir: &OldDir,
    config: &Path,
    old: &Snapshot,
    new: &Snapshot,
    members: &[MemberChange],
) -> Rollback {
    let dir = config.display();
    let mut commands = match &old_dir.rev {
        Some(rev) => vec![format!("git -C {dir} checkout {rev} -- .")],
        None => {
            let mut c = vec![
                format!("# or from a backup taken before the change: clawgate restore BACKUP.tar --to {dir} --force"),
                format!("cp -a {from}/. {dir}/"),
            ];
            // cp leaves the members this change added: remove them.
            for m in members.iter().filter(|m| m.change == "added") {
                c.push(format!("rm {dir}/members/{}.env", m.member));
            }
            c
        }
    };
    let restart = !crate::config::changes::between(new, old)
        .needs_restart
        .is_empty();
    commands.push(if restart {
        "# restart clawgate: a listener or log setting changed".to_string()
    } else {
        "kill -HUP $(pidof clawgate)   # or wait: clawgate reloads on file change".to_string()
    });
    Rollback {
        commands,
        restart,
        token_windows: windows(old, new, members),
    }
}

/// For each member whose tokens changed: each old token and when the
/// new config stops accepting it.
fn windows(old: &Snapshot, new: &Snapshot, members: &[MemberChange]) -> Vec<TokenWindow> {
    let mut out = Vec::new();
    for mc in members.iter().filter(|m| m.change == "changed") {
        if !mc.keys.iter().any(|k| k.key == "TOKEN_SHA256") {
            continue;
        }
        let (Some((_, a)), Some((_, b))) = (
            old.member_by_name(&mc.member),
            new.member_by_name(&mc.member),
        ) else {
            continue;
        };
        for t in &a.tokens {
            let kept = b.token(&t.id);
            out.push(TokenWindow {
                member: mc.member.clone(),
                token: t.id.clone(),
                closes: kept.and_then(|k| k.expires).map(crate::cli::rfc3339),
                never: kept.is_some_and(|k| k.expires.is_none()),
            });
        }
    }
    out
}

/// A warning when the change mixes more than one of token rotation, TLS
/// material and member policy.
pub fn warnings(members: &[MemberChange], settings: &[SettingChange]) -> Vec<String> {
    let keys = || members.iter().flat_map(|m| m.keys.iter().map(|k| k.key));
    let tokens = members
        .iter()
        .any(|m| m.change == "changed" && m.keys.iter().any(|k| k.key == "TOKEN_SHA256"));
    let tls = keys().any(|k| k.starts_with("CERT_"))
        || settings.iter().any(|s| {
            ["listen.tls_", "listen.client_"]
                .iter()
                .any(|p| s.setting.starts_with(p))
        });
    let policy = members.iter().any(|m| m.change != "changed")
        || keys().any(|k| ["ORIGINS", "EGRESS_CIDRS", "UPSTREAM", "SCOPES", "MODE"].contains(&k));
    let mixed: Vec<&str> = [
        (tokens, "token rotation"),
        (tls, "TLS material"),
        (policy, "member policy"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    if mixed.len() > 1 {
        vec![format!(
            "this change mixes {}: split it into one ticket each, so a rollback undoes one thing",
            mixed.join(" and ")
        )]
    } else {
        Vec::new()
    }
}
