//! The text rendering of a probe outcome: one line per step, the detail,
//! and on a refusal the origins diff from the response body.

use serde_json::Value;

use super::Outcome;

pub(super) fn text(o: &Outcome) -> String {
    let mut out = format!("clawgate probe {} as {}\n", o.url, o.credential);
    if let Some(fp) = &o.server_cert_sha256 {
        out.push_str(&format!("server certificate sha256 {fp}\n"));
    }
    for s in &o.steps {
        let status = s
            .status
            .map(|c| c.to_string())
            .unwrap_or_else(|| "---".into());
        let lat = s
            .latency_ms
            .map(|m| format!("{m:.1} ms"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}  {:<9} {:<20} {status}  {lat:>9}  request_id {}  {}\n",
            s.started,
            s.step,
            s.target,
            s.request_id.as_deref().unwrap_or("-"),
            if s.pass { "PASS" } else { "FAIL" }
        ));
        let mut detail = s.detail.clone();
        if let Some(rt) = s.round_trip_ms {
            detail.push_str(&format!(" (round trip {rt:.1} ms)"));
        }
        out.push_str(&format!("    {detail}\n"));
        if let Some(r) = &s.reason {
            out.push_str(&format!("    reason: {r}\n"));
        }
        if let Some(d) = &s.diff {
            let o = &d["origin"];
            let list = |v: &Value| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "    origin:    presented {}\n               allowed   {}\n",
                o["presented"].as_str().unwrap_or("(none)"),
                list(&o["allowed"])
            ));
            if let Some(n) = o["nearest"].as_str() {
                out.push_str(&format!("               nearest   {n}\n"));
            }
            if let Some(h) = o["hint"].as_str() {
                out.push_str(&format!("               hint      {h}\n"));
            }
            let c = &d["client_ip"];
            out.push_str(&format!(
                "    client ip: presented {}\n               allowed   {}\n",
                c["presented"].as_str().unwrap_or("-"),
                list(&c["allowed"])
            ));
        }
    }
    out.push_str(&format!(
        "verdict: {}\n",
        if o.pass { "PASS" } else { "FAIL" }
    ));
    out
}

/// The outcome as Markdown for a change ticket: a table of steps, then
/// each step's detail and, on a refusal, its reason (the diff is in the
/// JSON and the text form).
pub(super) fn markdown(o: &Outcome) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let ms = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.1} ms"));
    let mut out = format!(
        "## clawgate probe `{}` as {}\n\n",
        o.url,
        cell(&o.credential)
    );
    if let Some(fp) = &o.server_cert_sha256 {
        out.push_str(&format!("Server certificate SHA-256 `{fp}`.\n\n"));
    }
    out.push_str("| step | target | status | latency | round trip | request ID | result |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for s in &o.steps {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | `{}` | {} |\n",
            s.step,
            cell(&s.target),
            s.status.map_or("-".to_string(), |c| c.to_string()),
            ms(s.latency_ms),
            ms(s.round_trip_ms),
            s.request_id.as_deref().unwrap_or("-"),
            if s.pass { "PASS" } else { "**FAIL**" }
        ));
    }
    out.push('\n');
    for s in &o.steps {
        out.push_str(&format!("- {}: {}", s.step, cell(&s.detail)));
        if let Some(r) = &s.reason {
            out.push_str(&format!(" (reason `{r}`)"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\n**Verdict: {}**\n",
        if o.pass { "PASS" } else { "FAIL" }
    ));
    out
}
