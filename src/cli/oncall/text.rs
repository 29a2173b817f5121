//! The on-call packet as text for a terminal (and, fenced, for a ticket).

use super::{Count, Packet};

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1} ms"))
        .unwrap_or_else(|| "-".into())
}

pub fn text(p: &Packet) -> String {
    let mut o = format!(
        "clawgate on-call packet: {} at {}: {}\n",
        p.config_dir,
        p.generated_at,
        if p.healthy {
            "HEALTHY"
        } else {
            "NEEDS ATTENTION"
        }
    );
    if let Some(e) = &p.config_error {
        for l in e.lines() {
            o.push_str(&format!("!! {}\n", l.trim_start_matches("clawgate: ")));
        }
    }
    o.push_str(&format!(
        "\n== CHECK: {} ({} passed, {} failed)\n",
        if p.check.pass { "PASS" } else { "FAIL" },
        p.check.passed,
        p.check.failed
    ));
    for r in &p.check.failing {
        o.push_str(&format!(
            "  FAIL {} / {}: {}\n",
            r.section, r.check, r.evidence
        ));
    }
    o.push_str("\n== UPSTREAMS (TCP connect)\n");
    if p.upstreams.is_empty() {
        o.push_str("  unknown: the configuration did not load\n");
    }
    for u in &p.upstreams {
        o.push_str(&format!(
            "  {:<12} {:<22} {:<12} {}\n",
            u.name,
            u.address,
            if u.reachable {
                "reachable"
            } else {
                "UNREACHABLE"
            },
            if u.reachable {
                ms(u.connect_ms)
            } else {
                u.error.clone().unwrap_or_default()
            }
        ));
    }
    let a = &p.admin;
    o.push_str(&format!(
        "\n== ADMIN {}\n",
        a.url.as_deref().unwrap_or("(not contacted)")
    ));
    let fp = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
    match (a.reachable, a.serves_this_config) {
        (false, _) if a.url.is_none() => o.push_str(&format!(
            "  {}; denial counts unavailable\n",
            a.error.as_deref().unwrap_or("-").replacen("not contacted", "NOT CONTACTED", 1)
        )),
        (false, _) => o.push_str(&format!(
            "  UNREACHABLE: {}; denial counts unavailable\n",
            a.error.as_deref().unwrap_or("-")
        )),
        (true, Some(false)) => o.push_str(&format!(
            "  ANOTHER CONFIG: {}\n",
            a.error.as_deref().unwrap_or("-")
        )),
        (true, Some(true)) => o.push_str(&format!(
            "  reachable; readyz: {}; serves this config (fingerprint {}, {})\n",
            a.ready.as_deref().unwrap_or("-"),
            fp(&a.config_fingerprint),
            a.config_dir.as_deref().unwrap_or("-")
        )),
        (true, None) => o.push_str(&format!(
            "  reachable; readyz: {}; serves fingerprint {} of {}, UNVERIFIED (this config did not load)\n",
            a.ready.as_deref().unwrap_or("-"),
            fp(&a.config_fingerprint),
            a.config_dir.as_deref().unwrap_or("-")
        )),
    }
    if !a.restart_pending.is_empty() {
        o.push_str(&format!(
            "  RESTART PENDING: {} changed in the loaded config; the running values stay until a restart\n",
            a.restart_pending.join(", ")
        ));
    }
    let pairs = |v: &[Count]| -> Vec<(String, String, u64)> {
        v.iter()
            .map(|c| (c.member.clone(), c.reason.clone(), c.count))
            .collect()
    };
    let errors: Vec<(String, String, u64)> = p
        .upstream_errors
        .iter()
        .map(|c| (c.upstream.clone(), c.kind.clone(), c.count))
        .collect();
    for (title, list, head) in [
        (
            "DENIALS since start (clawgate_denials_total)",
            pairs(&p.denials),
            ("member", "reason"),
        ),
        (
            "AUDIT WOULD-DENY since start (clawgate_audit_would_deny_total)",
            pairs(&p.audit_would_deny),
            ("member", "reason"),
        ),
        (
            "UPSTREAM ERRORS since start (clawgate_upstream_errors_total)",
            errors,
            ("upstream", "kind"),
        ),
    ] {
        o.push_str(&format!("\n== {title}\n"));
        if !p.admin.reachable {
            o.push_str("  unavailable (admin listener unreachable)\n");
        } else if p.admin.serves_this_config == Some(false) {
            o.push_str("  not shown (the admin listener serves another config)\n");
        } else if list.is_empty() {
            o.push_str("  none\n");
        } else {
            o.push_str(&format!("  {:<16} {:<22} count\n", head.0, head.1));
            for (a, b, n) in &list {
                o.push_str(&format!("  {a:<16} {b:<22} {n}\n"));
            }
        }
    }
    o.push_str("\n== CHANNELS (per member, since the instance started)\n");
    if !p.admin.reachable || p.admin.serves_this_config == Some(false) {
        o.push_str("  unavailable (admin listener unreachable or serving another config)\n");
    } else {
        super::channels::text(&p.channels, &mut o);
    }
    let l = &p.access_log;
    match &l.path {
        Some(path) => o.push_str(&format!(
            "\n== ACCESS LOG: last {} line(s) of {path}\n",
            l.lines.len()
        )),
        None => o.push_str(&format!("\n== ACCESS LOG ({})\n", l.destination)),
    }
    if let Some(n) = &l.note {
        o.push_str(&format!("  {n}\n"));
    }
    for line in &l.lines {
        o.push_str(line);
        o.push('\n');
    }
    o.trim_end().to_string()
}
