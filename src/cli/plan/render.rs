//! The plan for a terminal (`text`) and as a change ticket (`md`).

use std::fmt::Write as _;

use super::replay::{Flow, Report};
use super::rollback::Rollback;
use super::Plan;

pub fn text(p: &Plan) -> String {
    let mut o = format!("clawgate plan: {} -> {}\n\nMEMBERS\n", p.from, p.config);
    if p.members.is_empty() {
        o.push_str("  (no member changes)\n");
    }
    for m in &p.members {
        let _ = writeln!(o, "  {} ({})", m.member, m.change);
        for k in &m.keys {
            let _ = writeln!(o, "      {}: {} -> {}", k.key, k.old, k.new);
        }
    }
    o.push_str("\nSETTINGS\n");
    if p.settings.is_empty() {
        o.push_str("  (no setting changes)\n");
    }
    for s in &p.settings {
        let _ = writeln!(
            o,
            "  {}: {} -> {} (applies on {})",
            s.setting, s.old, s.new, s.applies
        );
    }
    o.push_str("\nREPLAY\n");
    match &p.replay {
        None => o.push_str("  (no --access-log given: no request replayed)\n"),
        Some(r) => replay_text(&mut o, r),
    }
    o.push_str("\nROLLBACK\n");
    rollback_text(&mut o, &p.rollback);
    for w in &p.warnings {
        let _ = writeln!(o, "\nWARNING: {w}");
    }
    let _ = writeln!(o, "\nRESULT: {}", verdict(p));
    o
}

fn verdict(p: &Plan) -> String {
    match (&p.replay, p.lost_requests) {
        (None, _) => "no access log replayed: nothing known to be lost".into(),
        (Some(_), 0) => "nothing that was allowed would now be refused".into(),
        (Some(_), n) => format!("{n} request(s) that were allowed would or may now be refused"),
    }
}

fn counts(r: &Report) -> String {
    format!(
        "{} request(s) judged from {}; skipped: {} other kind(s), {} unparsable, {} without a client address",
        r.judged,
        r.files.join(", "),
        r.other_kinds,
        r.unparsable,
        r.no_client_ip
    )
}

fn replay_text(o: &mut String, r: &Report) {
    let _ = writeln!(o, "  {}", counts(r));
    if r.members.is_empty() {
        o.push_str("  no request changes its answer\n");
    }
    for (member, f) in &r.members {
        for (what, flow) in flows(f) {
            if flow.count > 0 {
                let _ = writeln!(
                    o,
                    "  {member}: {} {what} ({}), e.g. {}",
                    flow.count,
                    reasons(flow),
                    flow.examples.join(", ")
                );
            }
        }
    }
}

fn flows(f: &super::replay::Flows) -> [(&'static str, &Flow); 3] {
    [
        ("allowed -> denied", &f.allowed_to_denied),
        ("allowed -> at risk", &f.allowed_to_at_risk),
        ("denied -> allowed", &f.denied_to_allowed),
    ]
}

fn reasons(f: &Flow) -> String {
    f.reasons
        .iter()
        .map(|(r, n)| format!("{r}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn windows(r: &Rollback) -> Vec<String> {
    r.token_windows
        .iter()
        .map(|w| match (&w.closes, w.never) {
            (Some(t), _) => format!(
                "{}: old token {} keeps working until {t} (the overlap window closes then)",
                w.member, w.token
            ),
            (None, true) => format!(
                "{}: old token {} never expires: the overlap window stays open until it is revoked",
                w.member, w.token
            ),
            (None, false) => format!(
                "{}: old token {} stops working at reload (no overlap window)",
                w.member, w.token
            ),
        })
        .collect()
}

fn rollback_text(o: &mut String, r: &Rollback) {
    for c in &r.commands {
        let _ = writeln!(o, "  $ {c}");
    }
    for w in windows(r) {
        let _ = writeln!(o, "  {w}");
    }
}

/// A table cell: pipes escaped, never empty.
fn cell(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.replace('|', "\\|")
    }
}

pub fn md(p: &Plan) -> String {
    let mut o = format!(
        "# Change: `{}` → `{}`\n\n**Result:** {}\n",
        p.from,
        p.config,
        verdict(p)
    );
    for w in &p.warnings {
        let _ = writeln!(o, "\n> **Warning:** {w}");
    }
    o.push_str("\n## Members\n\n");
    if p.members.is_empty() {
        o.push_str("No member changes.\n");
    } else {
        o.push_str("| Member | Change | Key | Old | New |\n|---|---|---|---|---|\n");
        for m in &p.members {
            for k in &m.keys {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    cell(&m.member),
                    m.change,
                    k.key,
                    cell(&k.old),
                    cell(&k.new)
                );
            }
        }
    }
    o.push_str("\n## Settings (clawgate.toml)\n\n");
    if p.settings.is_empty() {
        o.push_str("No setting changes.\n");
    } else {
        o.push_str("| Setting | Old | New | Applies on |\n|---|---|---|---|\n");
        for s in &p.settings {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                cell(&s.setting),
                cell(&s.old),
                cell(&s.new),
                s.applies
            );
        }
    }
    o.push_str("\n## Replay\n\n");
    match &p.replay {
        None => o.push_str("No access log replayed.\n"),
        Some(r) => replay_md(&mut o, r),
    }
    o.push_str("\n## Rollback\n\n```sh\n");
    for c in &p.rollback.commands {
        let _ = writeln!(o, "{c}");
    }
    o.push_str("```\n");
    for w in windows(&p.rollback) {
        let _ = writeln!(o, "\n- {w}");
    }
    o
}

fn replay_md(o: &mut String, r: &Report) {
    let _ = writeln!(o, "{}.\n", counts(r));
    if r.members.is_empty() {
        o.push_str("No request changes its answer.\n");
        return;
    }
    o.push_str("| Member | Flow | Requests | Reasons | Examples |\n|---|---|---|---|---|\n");
    for (member, f) in &r.members {
        for (what, flow) in flows(f) {
            if flow.count > 0 {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    cell(member),
                    what.replace("->", "→"),
                    flow.count,
                    cell(&reasons(flow)),
                    cell(&flow.examples.join(", "))
                );
            }
        }
    }
}
