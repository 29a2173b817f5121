//! A refusal as a browser is shown it: a short HTML page with the same
//! reason, diff and request ID as the JSON body, and the line to send the
//! platform lead. Only for a request that asks for `text/html` and not
//! JSON (a page load); API clients keep the JSON.
//!
//! Every value from the request (the presented origin, the hint that
//! quotes it) is escaped; the page carries no script and may not be
//! framed.

use http::StatusCode;

use crate::deny::Answer;
use clawgate_policy::authorize::Explained;
use clawgate_policy::Reason;

macro_rules! html_fields {
    ($($extra:literal)?) => {
        concat!(
            "content-type: text/html; charset=utf-8\r\ncache-control: no-store\r\n",
            "content-security-policy: default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'\r\n",
            "x-frame-options: DENY\r\nx-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\n",
            $($extra, "\r\n")?
        )
        .as_bytes()
    };
}

const HTML_FIELDS: &[u8] = html_fields!();
const CHALLENGE_FIELDS: &[u8] = html_fields!("www-authenticate: Bearer realm=\"clawgate\"");
const INVALID_TOKEN_FIELDS: &[u8] =
    html_fields!("www-authenticate: Bearer realm=\"clawgate\", error=\"invalid_token\"");

/// Whether the client asked for a page: `Accept` names `text/html` and
/// not `application/json`.
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    let Some(a) = accept else { return false };
    let has = |needle: &[u8]| {
        a.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    has(b"text/html") && !has(b"application/json")
}

/// A denial as a page. `member` and `diff` only for an identified member
/// (a stranger learns no allowlist, as with the JSON body).
pub fn page(reason: Reason, request_id: &str, member: Option<(&str, &Explained)>) -> Answer {
    let status = crate::deny::status(reason);
    let title = match status {
        StatusCode::UNAUTHORIZED => "Not signed in",
        _ => "Not allowed from here",
    };
    let mut b = String::with_capacity(2048);
    b.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    b.push_str("<meta name=\"viewport\" content=\"width=device-width\"><title>");
    b.push_str(title);
    b.push_str(" · clawgate</title><style>body{font:15px/1.5 system-ui,sans-serif;max-width:42em;margin:3em auto;padding:0 1em;color:#222}code,pre{background:#f3f3f3;padding:.1em .3em}pre{padding:.7em;white-space:pre-wrap}td{padding:.2em .8em .2em 0;vertical-align:top}</style></head><body><h1>");
    b.push_str(title);
    b.push_str("</h1><p>clawgate refused this request: <code>");
    b.push_str(reason.code());
    b.push_str("</code>.</p>");
    match (status, member) {
        (StatusCode::UNAUTHORIZED, _) => b.push_str(
            "<p>No valid credential came with it. Sign in at <a href=\"/_clawgate/login\">/_clawgate/login</a> \
             with your token (if your team uses browser sessions), or ask your platform lead for one.</p>",
        ),
        (_, Some((name, explained))) => diff_table(&mut b, name, explained),
        _ => b.push_str("<p>This address is not allowed to use this path.</p>"),
    }
    b.push_str("<p>If this looks wrong, send your platform lead this line:</p><pre>request_id=");
    escape(&mut b, request_id);
    b.push_str(" reason=");
    b.push_str(reason.code());
    if let Some((name, _)) = member {
        b.push_str(" member=");
        escape(&mut b, name);
    }
    b.push_str("</pre></body></html>\n");
    let fields = match reason {
        Reason::BadToken | Reason::TokenExpired => INVALID_TOKEN_FIELDS,
        _ if status == StatusCode::UNAUTHORIZED => CHALLENGE_FIELDS,
        _ => HTML_FIELDS,
    };
    Answer {
        status,
        body: b,
        fields,
    }
}

fn diff_table(b: &mut String, member: &str, explained: &Explained) {
    let (o, ip) = (&explained.diff.origin, &explained.diff.client_ip);
    b.push_str("<p>You are signed in as <b>");
    escape(b, member);
    b.push_str("</b>. What was presented, and what your compartment allows:</p><table>");
    row(
        b,
        "page origin",
        o.presented.as_deref().unwrap_or("none (no Origin header)"),
        &o.allowed,
    );
    if let Some(nearest) = &o.nearest {
        b.push_str("<tr><td></td><td>nearest allowed: <code>");
        escape(b, nearest);
        b.push_str("</code>");
        if !o.hint.is_empty() {
            b.push_str(" (");
            escape(b, &o.hint);
            b.push(')');
        }
        b.push_str("</td></tr>");
    }
    row(b, "your address", &ip.presented, &ip.allowed);
    b.push_str("</table>");
}

fn row(b: &mut String, what: &str, presented: &str, allowed: &[String]) {
    b.push_str("<tr><td>");
    b.push_str(what);
    b.push_str("</td><td><code>");
    escape(b, presented);
    b.push_str("</code><br>allowed: ");
    for (i, a) in allowed.iter().enumerate() {
        if i > 0 {
            b.push_str(", ");
        }
        b.push_str("<code>");
        escape(b, a);
        b.push_str("</code>");
    }
    b.push_str("</td></tr>");
}

/// HTML text and attribute escaping (the login form uses it too).
pub(crate) fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_asked_for_by_accept_text_html_without_json() {
        let nav = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(Some(nav)));
        assert!(wants_html(Some(b"TEXT/HTML")));
        assert!(!wants_html(Some(b"*/*")));
        assert!(!wants_html(Some(b"application/json, text/html")));
        assert!(!wants_html(None));
    }

    #[test]
    fn the_presented_origin_is_escaped() {
        use clawgate_policy::authorize::{Diff, IpDiff};
        use clawgate_policy::origin::OriginDiff;
        let e = Explained::new(Diff {
            origin: OriginDiff {
                presented: Some("https://<script>x</script>".into()),
                allowed: vec!["https://app.example".into()],
                nearest: Some("https://app.example".into()),
                hint: "host differs: \"<script>\"".into(),
            },
            client_ip: IpDiff {
                presented: "10.0.0.9".into(),
                allowed: vec!["10.0.0.0/24".into()],
            },
        });
        let a = page(Reason::OriginNotAllowed, "rid-1", Some(("alice", &e)));
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(!a.body.contains("<script>"), "{}", a.body);
        assert!(a.body.contains("&lt;script&gt;"));
        assert!(a
            .body
            .contains("request_id=rid-1 reason=origin_not_allowed member=alice"));
        assert!(a.body.contains("10.0.0.0/24"));
    }
}
