//! Every way clawgate says no, mapped in one place to status, body and
//! header fields.
//!
//! The reasons themselves are the policy crate's closed set
//! ([`Reason`]); its code is the same string in the response body, the
//! access log and `clawgate_denials_total{reason}`, so on-call can go from
//! any one of them to the others.

use clawgate_policy::authorize::Explained;
use clawgate_policy::Reason;
use http::StatusCode;

/// The status a refusal for `reason` is answered with. Reasons that only
/// end open tunnels (a removed member, an expired session) are
/// authentication's: the caller can no longer be identified.
pub fn status(reason: Reason) -> StatusCode {
    if reason.is_authentication() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    }
}

/// One of clawgate's JSON answers: status, body, and the header fields
/// it always carries, as `name: value\r\n` lines written once here.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub fields: &'static [u8],
}

macro_rules! json_fields {
    ($($extra:literal)?) => {
        concat!(
            "content-type: application/json\r\ncache-control: no-store\r\n",
            $($extra, "\r\n")?
        )
        .as_bytes()
    };
}

const JSON_FIELDS: &[u8] = json_fields!();
const CHALLENGE_FIELDS: &[u8] = json_fields!("www-authenticate: Bearer realm=\"clawgate\"");
const INVALID_TOKEN_FIELDS: &[u8] =
    json_fields!("www-authenticate: Bearer realm=\"clawgate\", error=\"invalid_token\"");

/// 401: who you are could not be established. Same body whatever the
/// cause beyond the reason code, so probing learns nothing about members.
pub fn unauthorized(reason: Reason, request_id: &str) -> Answer {
    let body = error_body("unauthorized", reason.code(), request_id);
    let fields = match reason {
        Reason::BadToken | Reason::TokenExpired => INVALID_TOKEN_FIELDS,
        _ => CHALLENGE_FIELDS,
    };
    Answer {
        status: StatusCode::UNAUTHORIZED,
        body,
        fields,
    }
}

/// 403 with the origins diff: the error fields, then the diff's own
/// (`origin`, `client_ip`) from its JSON serialised once.
pub fn forbidden(reason: Reason, request_id: &str, member: &str, explained: &Explained) -> Answer {
    let extra = 16 + member.len() + explained.json.len();
    let mut body = error_body_with("forbidden", reason.code(), request_id, extra);
    body.pop(); // the closing brace
    body.push_str(",\"member\":");
    push_json_string(&mut body, member);
    match explained.json.strip_prefix('{') {
        Some(fields) if fields != "}" => {
            body.push(',');
            body.push_str(fields);
        }
        _ => body.push('}'),
    }
    json(StatusCode::FORBIDDEN, body)
}

/// 403 without the diff, for a caller who is not an identified member:
/// the error fields only.
pub fn forbidden_bare(reason: Reason, request_id: &str) -> Answer {
    json(
        StatusCode::FORBIDDEN,
        error_body("forbidden", reason.code(), request_id),
    )
}

/// Any other JSON error (400, 405, 413, 502, 504...).
pub fn error(status: StatusCode, reason: &str, request_id: &str) -> Answer {
    let body = error_body(
        status.canonical_reason().unwrap_or("error"),
        reason,
        request_id,
    );
    json(status, body)
}

/// A 502 or 504: the error fields, the upstream's name and, for a
/// member, the address tried.
pub fn upstream_error(
    status: StatusCode,
    reason: &str,
    request_id: &str,
    upstream: &str,
    addr: Option<&str>,
) -> Answer {
    let mut body = error_body(
        status.canonical_reason().unwrap_or("error"),
        reason,
        request_id,
    );
    body.pop();
    body.push_str(",\"upstream\":");
    push_json_string(&mut body, upstream);
    if let Some(addr) = addr {
        body.push_str(",\"address\":");
        push_json_string(&mut body, addr);
    }
    body.push('}');
    json(status, body)
}

/// `{"error":…,"reason":…,"request_id":…}`, written directly, not through
/// serde: a flood of bad requests gets one per request.
fn error_body(error: &str, reason: &str, request_id: &str) -> String {
    error_body_with(error, reason, request_id, 0)
}

/// [`error_body`] with room for `extra` more bytes (no regrowth when a
/// 403 appends its diff).
fn error_body_with(error: &str, reason: &str, request_id: &str, extra: usize) -> String {
    // `error` and `reason` are clawgate's own words (status phrases and
    // reason codes): plain ASCII that JSON takes as is. The request ID may
    // come from a trusted proxy, so it is escaped.
    debug_assert!(!needs_escape(error) && !needs_escape(reason));
    let mut out = String::with_capacity(48 + error.len() + reason.len() + request_id.len() + extra);
    out.push_str("{\"error\":\"");
    out.push_str(error);
    out.push_str("\",\"reason\":\"");
    out.push_str(reason);
    out.push_str("\",\"request_id\":");
    push_json_string(&mut out, request_id);
    out.push('}');
    out
}

/// Whether JSON needs `s` escaped (a control byte, `"` or `\\`). Every
/// refusal body and denial log line runs each field through this, so it
/// looks at eight bytes at a time, not one.
pub(crate) fn needs_escape(s: &str) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    /// Whether any byte of `x` is below `n` (exact for `n` <= 128).
    fn any_below(x: u64, n: u8) -> bool {
        x.wrapping_sub(LO * u64::from(n)) & !x & HI != 0
    }
    fn any_equal(x: u64, b: u8) -> bool {
        any_below(x ^ (LO * u64::from(b)), 1)
    }
    let mut words = s.as_bytes().chunks_exact(8);
    for w in &mut words {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        let x = u64::from_le_bytes(x);
        if any_below(x, 0x20) || any_equal(x, b'"') || any_equal(x, b'\\') {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A JSON string literal (RFC 8259 §7).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !needs_escape(s) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json(status: StatusCode, body: String) -> Answer {
    Answer {
        status,
        body,
        fields: JSON_FIELDS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_body_carries_the_error_fields_and_both_halves_of_the_diff() {
        use clawgate_policy::authorize::{Diff, IpDiff};
        use clawgate_policy::origin::OriginDiff;
        let diff = Diff {
            origin: OriginDiff {
                presented: Some("https://evil.example".into()),
                allowed: vec!["https://app.example".into()],
                nearest: Some("https://app.example".into()),
                hint: "host differs".into(),
            },
            client_ip: IpDiff {
                presented: "10.0.0.9".into(),
                allowed: vec!["10.0.0.0/24".into()],
            },
        };
        let r = forbidden(
            Reason::OriginNotAllowed,
            "rid-\"1",
            "al\\ice",
            &Explained::new(diff.clone()),
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let v: serde_json::Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
        assert_eq!(v["error"], "forbidden");
        assert_eq!(v["reason"], Reason::OriginNotAllowed.code());
        assert_eq!(v["request_id"], "rid-\"1");
        assert_eq!(v["member"], "al\\ice");
        assert_eq!(v["origin"], serde_json::to_value(&diff.origin).unwrap());
        assert_eq!(
            v["client_ip"],
            serde_json::to_value(&diff.client_ip).unwrap()
        );
        assert_eq!(v.as_object().unwrap().len(), 6);
    }

    #[test]
    fn a_bare_403_body_has_only_the_error_fields() {
        let r = forbidden_bare(Reason::CidrNotAllowed, "rid-1");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "forbidden", "reason": "cidr_not_allowed", "request_id": "rid-1"})
        );
    }

    #[test]
    fn needs_escape_agrees_with_the_bytewise_rule_at_every_position() {
        let bytewise = |s: &str| s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
        for len in 0..20 {
            for at in 0..len {
                for b in 0u8..=0x7f {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    let s = std::str::from_utf8(&v).unwrap();
                    assert_eq!(needs_escape(s), bytewise(s), "{v:?}");
                }
            }
        }
        // Multi-byte UTF-8 (bytes >= 0x80) never needs escaping.
        assert!(!needs_escape("héllo wörld ünïcode ✓ ok"));
        assert!(needs_escape("héllo wörld ünïcode ✓ \"x\""));
    }

    #[test]
    fn error_bodies_are_json_even_with_hostile_ids() {
        for rid in ["0193-abc", "a\"b\\c", "tab\there\u{1}", "ünï"] {
            let body = error_body("Bad Request", "bad_target", rid);
            let v: serde_json::Value = serde_json::from_str(&body).expect(&body);
            assert_eq!(v["error"], "Bad Request");
            assert_eq!(v["reason"], "bad_target");
            assert_eq!(v["request_id"], rid);
            assert_eq!(v.as_object().unwrap().len(), 3);
        }
    }

    #[test]
    fn reason_codes_and_statuses_are_pinned() {
        let table: Vec<(&str, u16)> = Reason::ALL
            .iter()
            .map(|r| (r.code(), status(*r).as_u16()))
            .collect();
        assert_eq!(
            table,
            vec![
                ("no_credentials", 401),
                ("bad_token", 401),
                ("token_expired", 401),
                ("unknown_cert", 401),
                ("origin_not_allowed", 403),
                ("origin_missing", 403),
                ("cidr_not_allowed", 403),
                ("member_removed", 401),
                ("session_expired", 401),
            ]
        );
    }

    #[test]
    fn unauthorized_has_a_challenge_and_no_member() {
        let r = unauthorized(Reason::BadToken, "rid-1");
        assert_eq!(r.status, 401);
        let fields = std::str::from_utf8(r.fields).unwrap();
        assert!(fields.contains(
            "\r\nwww-authenticate: Bearer realm=\"clawgate\", error=\"invalid_token\"\r\n"
        ));
        assert!(fields.starts_with("content-type: application/json\r\n"));
        assert!(fields.ends_with("\r\n"));
        let fields = unauthorized(Reason::NoCredentials, "rid-1").fields;
        assert!(!std::str::from_utf8(fields)
            .unwrap()
            .contains("invalid_token"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["reason"], "bad_token");
        assert_eq!(v["request_id"], "rid-1");
        assert!(v.get("member").is_none());
    }
}
