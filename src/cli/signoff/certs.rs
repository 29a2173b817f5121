//! The `tls` rows of the sign-off: what the `[listen]` certificates will
//! do to members. Expiry (warn within [`CERT_WARNING`], fail once expired),
//! whether the server certificate's SANs cover the host of every https
//! origin members list, and whether `client_auth = "required"` would lock
//! out members that have only tokens. Expiry is read from the files named
//! in `clawgate.toml`, so it is reported even when the loader refuses.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{resolve, rfc3339, short, Row, Status};
use crate::config::certs::{self, CertFacts};
use crate::config::raw::RawBase;
use crate::config::{ClientAuth, Snapshot, TlsFiles};
use clawgate_policy::origin::Pattern;

pub const TLS: &str = "tls";
/// How close an expiry makes its row a warning.
pub const CERT_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

const SERVER_EXPIRY: &str = "server certificate valid for 30 days or more";
const CA_EXPIRY: &str = "member CA valid for 30 days or more";
const SANS: &str = "server certificate covers the names members use";
const REQUIRED: &str = "client_auth = \"required\" leaves no token-only member";

fn row(check: &'static str, status: Status, evidence: String) -> Row {
    Row {
        section: TLS,
        check,
        status,
        evidence,
    }
}

/// The tls rows; none when `[listen]` has no TLS.
pub fn rows(
    dir: &Path,
    raw: Option<&RawBase>,
    snap: Option<&Snapshot>,
    now: SystemTime,
) -> Vec<Row> {
    let mut out = Vec::new();
    if let Some(listen) = raw.map(|r| &r.listen) {
        if let Some(c) = &listen.tls_cert {
            out.push(expiry_row(SERVER_EXPIRY, &resolve(dir, c), dir, now));
        }
        if let Some(c) = &listen.client_ca {
            out.push(expiry_row(CA_EXPIRY, &resolve(dir, c), dir, now));
        }
    }
    if let Some((s, t)) = snap.and_then(|s| s.listen.tls.as_ref().map(|t| (s, t))) {
        out.push(sans_row(s, t));
        out.push(client_auth_row(s, t));
    }
    out
}

fn days(secs: u64) -> u64 {
    secs / 86_400
}

fn expiry_row(check: &'static str, path: &Path, dir: &Path, now: SystemTime) -> Row {
    let name = short(path, dir);
    let certs = match certs::read_pem(path) {
        Ok(c) => c,
        Err(e) => return row(check, Status::Fail, e),
    };
    let first = certs
        .iter()
        .min_by_key(|c| c.not_after)
        .expect("read_pem returns at least one");
    let of = if certs.len() > 1 {
        format!(" (the first of its {} certificates to expire)", certs.len())
    } else {
        String::new()
    };
    let at = UNIX_EPOCH + Duration::from_secs(first.not_after.max(0) as u64);
    let what = format!("{name}: {}{of}", first.subject);
    match at.duration_since(now) {
        Err(ago) => row(
            check,
            Status::Fail,
            format!(
                "{what} expired {} ({} days ago): members' handshakes fail; renew it",
                rfc3339(at),
                days(ago.duration().as_secs())
            ),
        ),
        Ok(left) => {
            let status = if left < CERT_WARNING {
                Status::Warn
            } else {
                Status::Pass
            };
            let hint = if status == Status::Warn {
                "; renew it before then"
            } else {
                ""
            };
            let evidence = format!(
                "{what} expires {} (in {} days){hint}",
                rfc3339(at),
                days(left.as_secs())
            );
            row(check, status, evidence)
        }
    }
}

/// The host a member's browser puts in the TLS handshake for `p`, when
/// `p` is an origin this TLS listener would serve (https or wss).
fn tls_host(p: &Pattern) -> Option<String> {
    match p {
        Pattern::Exact(o) if matches!(o.scheme.as_str(), "https" | "wss") => Some(o.host.clone()),
        Pattern::Wildcard { scheme, suffix, .. } if matches!(scheme.as_str(), "https" | "wss") => {
            Some(format!("*.{suffix}"))
        }
        _ => None,
    }
}

fn sans_row(s: &Snapshot, t: &TlsFiles) -> Row {
    let name = short(&t.cert, &s.dir);
    let leaf: CertFacts = match certs::read_pem(&t.cert) {
        Ok(c) => c.into_iter().next().expect("read_pem returns at least one"),
        Err(e) => return row(SANS, Status::Fail, e),
    };
    let mut checked = 0;
    let mut missing = Vec::new();
    for m in &s.members {
        for p in m.origins.patterns() {
            let Some(host) = tls_host(p) else { continue };
            checked += 1;
            if !certs::covers(&leaf, &host) {
                missing.push(format!("{}'s origin {p} (host {host})", m.name));
            }
        }
    }
    let sans = leaf.sans();
    if missing.is_empty() {
        row(
            SANS,
            Status::Pass,
            format!(
                "{checked} https origin(s) in members' ORIGINS, all covered by {name} (SANs: {sans})"
            ),
        )
    } else {
        row(
            SANS,
            Status::Fail,
            format!(
                "not covered by {name} (SANs: {sans}): {}; browsers refuse the handshake: reissue the certificate with these names, or fix ORIGINS",
                missing.join(", ")
            ),
        )
    }
}

fn client_auth_row(s: &Snapshot, t: &TlsFiles) -> Row {
    if t.client_auth != Some(ClientAuth::Required) {
        let mode = match t.client_auth {
            Some(ClientAuth::Optional) => "\"optional\"",
            _ => "not set",
        };
        return row(
            REQUIRED,
            Status::Pass,
            format!("client_auth {mode}: members without a certificate connect with their token"),
        );
    }
    let token_only: Vec<&str> = s
        .members
        .iter()
        .filter(|m| m.cert_sha256.is_empty() && m.cert_san.is_empty())
        .map(|m| m.name.as_str())
        .collect();
    if token_only.is_empty() {
        row(
            REQUIRED,
            Status::Pass,
            format!(
                "all {} member(s) have CERT_SHA256 or CERT_SAN",
                s.members.len()
            ),
        )
    } else {
        row(
            REQUIRED,
            Status::Fail,
            format!(
                "{} ha{} only tokens and could never connect: the handshake refuses a client without a member certificate; give them CERT_SHA256 or CERT_SAN, or set client_auth = \"optional\"",
                token_only.join(", "),
                if token_only.len() == 1 { "s" } else { "ve" }
            ),
        )
    }
}
