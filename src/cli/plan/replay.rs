//! Replay: each `http` line of the access logs judged by the old and by
//! the new config, through the policy crate the proxy uses (public
//! routes, credentials by ID, `authorize::evaluate`), and counted per
//! member where the answer flips.
//!
//! The log does not carry everything a request did: an allowed request's
//! `Origin` is not logged (a refused one's is, in its diff), and neither
//! is the token itself, only its ID. So a credential is found by its ID
//! and expiry, and where the origin is unknown the new allowlist is only
//! compared with the old one: if it lost an entry, the request is "at
//! risk" (it may now be refused), never silently judged allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::config::Snapshot;
use clawgate_policy::authorize;
use clawgate_policy::cidr;
use clawgate_policy::member::{Member, Mode};

/// Example request IDs kept per flow.
const EXAMPLES: usize = 3;

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub files: Vec<String>,
    /// `http` lines judged.
    pub judged: usize,
    /// Lines of another kind (`websocket`, …), not requests to judge.
    pub other_kinds: usize,
    pub unparsable: usize,
    /// Lines without a client address (refused before it was known).
    pub no_client_ip: usize,
    /// Per member (`-`: unidentified): the requests whose answer flips.
    pub members: BTreeMap<String, Flows>,
}

#[derive(Serialize, Debug, Default)]
pub struct Flows {
    pub allowed_to_denied: Flow,
    /// Allowed before; the origin is not in the log and the new origins
    /// allowlist lost an entry the old one had.
    pub allowed_to_at_risk: Flow,
    pub denied_to_allowed: Flow,
}

#[derive(Serialize, Debug, Default)]
pub struct Flow {
    pub count: usize,
    /// Reason code → requests (the new config's reason for a denial, the
    /// old config's for a denial lifted).
    pub reasons: BTreeMap<String, usize>,
    pub examples: Vec<String>,
}

impl Flow {
    fn add(&mut self, reason: &str, request_id: &str) {
        self.count += 1;
        *self.reasons.entry(reason.to_string()).or_default() += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(request_id.to_string());
        }
    }
}

impl Report {
    /// Requests that were allowed and would (or may) now be refused.
    pub fn lost(&self) -> usize {
        self.members
            .values()
            .map(|f| f.allowed_to_denied.count + f.allowed_to_at_risk.count)
            .sum()
    }
}

/// What one config answers for one logged request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Allow,
    Deny(String),
    /// May be refused: a check needs data the log does not have.
    AtRisk(String),
}

/// The fields of one `http` line that judging uses.
struct Line {
    request_id: String,
    member: String,
    credential: Option<String>,
    ip: IpAddr,
    path: String,
    /// Known only when the line carries a diff: `Some(None)` = no Origin.
    origin: Option<Option<String>>,
}

/// Judge every line of `files` under `old` and `new`.
pub fn run(files: &[PathBuf], old: &Snapshot, new: &Snapshot) -> Result<Report, String> {
    let now = SystemTime::now();
    let mut r = Report::default();
    for f in files {
        r.files.push(f.display().to_string());
        let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| format!("{}: {e}", f.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                r.unparsable += 1;
                continue;
            };
            match parse(&v) {
                Parsed::Other => r.other_kinds += 1,
                Parsed::Bad => r.unparsable += 1,
                Parsed::NoIp => r.no_client_ip += 1,
                Parsed::Http(l) => {
                    r.judged += 1;
                    let before = judge(old, old, &l, now);
                    let after = judge(new, old, &l, now);
                    record(&mut r, &l, before, after);
                }
            }
        }
    }
    Ok(r)
}

fn record(r: &mut Report, l: &Line, before: Outcome, after: Outcome) {
    let flows = || Flows::default();
    match (before, after) {
        (Outcome::Allow, Outcome::Deny(why)) => r
            .members
            .entry(l.member.clone())
            .or_insert_with(flows)
            .allowed_to_denied
            .add(&why, &l.request_id),
        (Outcome::Allow, Outcome::AtRisk(why)) => r
            .members
            .entry(l.member.clone())
            .or_insert_with(flows)
            .allowed_to_at_risk
            .add(&why, &l.request_id),
        (Outcome::Deny(why) | Outcome::AtRisk(why), Outcome::Allow) => r
            .members
            .entry(l.member.clone())
            .or_insert_with(flows)
            .denied_to_allowed
            .add(&why, &l.request_id),
        _ => {}
    }
}

enum Parsed {
    Http(Line),
    Other,
    Bad,
    NoIp,
}

fn parse(v: &Value) -> Parsed {
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    match text("kind") {
        Some("http") => {}
        Some(_) => return Parsed::Other,
        None => return Parsed::Bad,
    }
    let (Some(request_id), Some(member), Some(ip), Some(path)) = (
        text("request_id"),
        text("member"),
        text("client_ip"),
        text("path"),
    ) else {
        return Parsed::Bad;
    };
    if ip == "-" {
        return Parsed::NoIp;
    }
    let Ok(ip) = ip.parse() else {
        return Parsed::Bad;
    };
    let origin = v.get("diff").and_then(|d| d.get("origin")).map(|o| {
        o.get("presented")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    Parsed::Http(Line {
        request_id: request_id.to_string(),
        member: member.to_string(),
        credential: text("credential").map(str::to_string),
        ip,
        path: path.to_string(),
        origin,
    })
}

/// `l` under `snap`, in the proxy's order: public route, identification,
/// authorization (audit mode lets a refusal pass). `baseline` is the old
/// config, whose origins an allowlist is compared with when the origin
/// is not in the log.
fn judge(snap: &Snapshot, baseline: &Snapshot, l: &Line, now: SystemTime) -> Outcome {
    let ip = cidr::canonical(l.ip);
    if let Some(route) = snap.public_route(&l.path) {
        return if route.sources.contains(ip) {
            Outcome::Allow
        } else {
            Outcome::Deny("cidr_not_allowed".into())
        };
    }
    let m = match identify(snap, l, now) {
        Ok(m) => m,
        Err("bad_token")
            if snap.member_by_name(&l.member).is_none()
                && baseline.member_by_name(&l.member).is_some() =>
        {
            return Outcome::Deny("member_removed".into())
        }
        Err(why) => return Outcome::Deny(why.into()),
    };
    let verdict = match &l.origin {
        Some(origin) => authorize::evaluate(m, origin.as_deref().map(str::as_bytes), ip)
            .map_err(|r| Outcome::Deny(r.code().into())),
        None if !m.egress.contains(ip) => Err(Outcome::Deny("cidr_not_allowed".into())),
        None => match baseline.member_by_name(&m.name) {
            Some((_, was)) if !covers(m, was) => Err(Outcome::AtRisk(
                "origins_narrowed (Origin not in the log)".into(),
            )),
            _ => Ok(()),
        },
    };
    match verdict {
        Ok(()) => Outcome::Allow,
        Err(_) if m.mode == Mode::Audit => Outcome::Allow,
        Err(o) => o,
    }
}

/// The member a line's credential (by ID) or, without one, its name
/// names in `snap`; else the reason the proxy would refuse.
fn identify<'a>(snap: &'a Snapshot, l: &Line, now: SystemTime) -> Result<&'a Member, &'static str> {
    let Some(cred) = &l.credential else {
        if l.member == "-" {
            return Err("no_credentials");
        }
        return snap
            .member_by_name(&l.member)
            .map(|(_, m)| m)
            .ok_or("member_removed");
    };
    for m in &snap.members {
        if let Some(t) = m.token(cred) {
            return if t.expired_at(now) {
                Err("token_expired")
            } else {
                Ok(m)
            };
        }
        if m.cert_sha256.iter().any(|c| hex::encode(c) == *cred) {
            return Ok(m);
        }
    }
    Err(if cred.starts_with("tok_") {
        "bad_token"
    } else {
        "unknown_cert"
    })
}

/// Whether `m`'s origins allowlist keeps every entry of `was`'s.
fn covers(m: &Member, was: &Member) -> bool {
    let set = |m: &Member| -> BTreeSet<String> {
        m.origins.patterns().iter().map(|p| p.to_string()).collect()
    };
    set(was).is_subset(&set(m))
}
