//! `clawgate gateway-config`: the OpenClaw gateway block that must match
//! clawgate's members, and the comparison `check --gateway-config` runs
//! against a gateway's real config, so the two allowlists never drift.
//!
//! Every OpenClaw key path used here sits in [`keys`]: when OpenClaw moves
//! a setting, that table is the one place to change. The paths are the ones
//! verified against the real package in `tests/e2e/NOTES.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::config::Snapshot;

mod drift;
use clawgate_policy::origin::Pattern;
pub use drift::{allowlist_drift, trust_drift};

/// Where each setting lives in the OpenClaw config (JSON/JSON5), as
/// checked against OpenClaw's own schema (`tests/e2e/NOTES.md`).
pub mod keys {
    pub const AUTH_MODE: &[&str] = &["gateway", "auth", "mode"];
    pub const TRUSTED_PROXIES: &[&str] = &["gateway", "trustedProxies"];
    pub const USER_HEADER: &[&str] = &["gateway", "auth", "trustedProxy", "userHeader"];
    pub const ALLOW_LOOPBACK: &[&str] = &["gateway", "auth", "trustedProxy", "allowLoopback"];
    pub const ALLOW_USERS: &[&str] = &["gateway", "auth", "trustedProxy", "allowUsers"];
    /// Not under `trustedProxy`: `gateway.auth.identityScopes`.
    pub const IDENTITY_SCOPES: &[&str] = &["gateway", "auth", "identityScopes"];
    pub const ALLOWED_ORIGINS: &[&str] = &["gateway", "controlUi", "allowedOrigins"];
    /// Browsers: without it each new browser waits for `openclaw devices approve`.
    pub const DEVICE_AUTO_APPROVE: &[&str] = &[
        "gateway",
        "auth",
        "trustedProxy",
        "deviceAutoApprove",
        "enabled",
    ];
    /// The value of [`AUTH_MODE`].
    pub const TRUSTED_PROXY_MODE: &str = "trusted-proxy";
    /// OpenClaw's closed set of operator scopes; other names in
    /// `identityScopes` fail the gateway's config validation.
    pub const OPERATOR_SCOPES: &[&str] = &[
        "operator.admin",
        "operator.read",
        "operator.write",
        "operator.sessions.read",
        "operator.sessions.write",
        "operator.approvals",
        "operator.questions",
        "operator.pairing",
        "operator.talk",
        "operator.talk.secrets",
    ];
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Config directory (holds clawgate.toml and members/).
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Which upstream's gateway (needed when there is more than one).
    #[arg(long)]
    pub upstream: Option<String>,
}

/// What the gateway behind one upstream must be configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub upstream: String,
    pub trusted_proxies: Vec<String>,
    pub user_header: String,
    pub allow_loopback: bool,
    pub allow_users: Vec<String>,
    pub identity_scopes: BTreeMap<String, Vec<String>>,
    pub allowed_origins: Vec<String>,
    pub device_auto_approve: bool,
    /// Things the operator should know (printed on stderr).
    pub notes: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let snap = match crate::config::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clawgate: {e}");
            eprintln!(
                "clawgate: fix the config first (`clawgate check --config {}` shows every problem)",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    };
    let idx = match pick_upstream(&snap, args.upstream.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("clawgate: {e}");
            return ExitCode::from(2);
        }
    };
    let expected = Expected::build(&snap, idx);
    for n in &expected.notes {
        eprintln!("note: {n}");
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&expected.to_json()).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

/// The upstream a gateway config is for: the named one, the only one, or
/// the one every member uses.
pub fn pick_upstream(snap: &Snapshot, name: Option<&str>) -> Result<usize, String> {
    let names = || {
        snap.upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(n) = name {
        return snap
            .upstream_by_name(n)
            .ok_or_else(|| format!("no upstream named '{n}'; defined: {}", names()));
    }
    if snap.upstreams.len() == 1 {
        return Ok(0);
    }
    let used: BTreeSet<usize> = snap.members.iter().map(|m| m.upstream).collect();
    match used.len() {
        1 => Ok(*used.iter().next().expect("one element")),
        _ => Err(format!(
            "{} upstreams, each its own gateway: pass --upstream NAME ({})",
            snap.upstreams.len(),
            names()
        )),
    }
}

/// Host part of an authority, without IPv6 brackets.
pub fn authority_host(a: &http::uri::Authority) -> &str {
    a.host().trim_start_matches('[').trim_end_matches(']')
}

/// The address(es) the gateway sees clawgate connect from.
fn proxy_addresses(host: &str, port: u16, notes: &mut Vec<String>) -> (Vec<String>, bool) {
    if host.eq_ignore_ascii_case("localhost") {
        return (vec!["127.0.0.1".into(), "::1".into()], true);
    }
    let ip: Option<IpAddr> = host.parse().ok().or_else(|| {
        use std::net::ToSocketAddrs;
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
    });
    match ip {
        Some(ip) if ip.is_loopback() => (vec![ip.to_string()], true),
        Some(ip) => {
            // The source address the kernel picks toward the upstream
            // (a connected UDP socket sends nothing).
            let bind: IpAddr = if ip.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            };
            let local = UdpSocket::bind((bind, 0))
                .and_then(|s| s.connect((ip, port)).and_then(|_| s.local_addr()));
            match local {
                Ok(a) => {
                    notes.push(format!(
                        "trustedProxies: {} is this host's source address toward {ip}; if clawgate runs elsewhere or behind NAT, put the address the gateway sees (OpenClaw refuses a non-loopback proxy address that is one of the gateway host's own interfaces: keep the gateway on loopback next to clawgate)",
                        a.ip()
                    ));
                    (vec![a.ip().to_string()], false)
                }
                Err(e) => {
                    notes.push(format!(
                        "trustedProxies: cannot tell this host's address toward {ip} ({e}); put the address the gateway sees clawgate connect from"
                    ));
                    (Vec::new(), false)
                }
            }
        }
        None => {
            notes.push(format!(
                "trustedProxies: cannot resolve upstream host '{host}'; put the address the gateway sees clawgate connect from"
            ));
            (Vec::new(), false)
        }
    }
}

impl Expected {
    pub fn build(snap: &Snapshot, upstream: usize) -> Self {
        let up = &snap.upstreams[upstream];
        let mut notes = Vec::new();
        let port = up.authority.port_u16().unwrap_or(80);
        let (trusted_proxies, allow_loopback) =
            proxy_addresses(authority_host(&up.authority), port, &mut notes);
        let members: Vec<_> = snap
            .members
            .iter()
            .filter(|m| m.upstream == upstream)
            .collect();
        let mut allow_users: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        allow_users.sort();
        let identity_scopes = members
            .iter()
            .map(|m| (m.name.clone(), m.scopes.clone()))
            .collect();
        for m in &members {
            for sc in m
                .scopes
                .iter()
                .filter(|s| !keys::OPERATOR_SCOPES.contains(&s.as_str()))
            {
                notes.push(format!(
                    "{}: SCOPES entry '{sc}' is not an OpenClaw operator scope ({}); the gateway refuses unknown names in identityScopes",
                    m.name,
                    keys::OPERATOR_SCOPES.join(", ")
                ));
            }
        }
        let mut origins = BTreeSet::new();
        for m in &members {
            for p in m.origins.patterns() {
                match p {
                    Pattern::None => {}
                    Pattern::Exact(o) => {
                        origins.insert(o.to_string());
                    }
                    Pattern::Wildcard { .. } => {
                        notes.push(format!(
                            "{}: ORIGINS entry {p} is a wildcard; OpenClaw's allowedOrigins compares exact strings, so list the concrete origins browsers use there",
                            m.name
                        ));
                        origins.insert(p.to_string());
                    }
                }
            }
        }
        if members.is_empty() {
            notes.push(format!(
                "no member uses upstream '{}': allowUsers is empty",
                up.name
            ));
        }
        Expected {
            upstream: up.name.clone(),
            trusted_proxies,
            user_header: up.identity_header.as_str().to_string(),
            allow_loopback,
            allow_users,
            identity_scopes,
            device_auto_approve: !origins.is_empty(),
            allowed_origins: origins.into_iter().collect(),
            notes,
        }
    }

    /// The block to merge into the gateway's `openclaw.json`.
    pub fn to_json(&self) -> Value {
        let mut root = Value::Object(Map::new());
        set(&mut root, keys::AUTH_MODE, json!(keys::TRUSTED_PROXY_MODE));
        set(
            &mut root,
            keys::TRUSTED_PROXIES,
            json!(self.trusted_proxies),
        );
        set(&mut root, keys::USER_HEADER, json!(self.user_header));
        set(&mut root, keys::ALLOW_LOOPBACK, json!(self.allow_loopback));
        set(&mut root, keys::ALLOW_USERS, json!(self.allow_users));
        set(
            &mut root,
            keys::IDENTITY_SCOPES,
            json!(self.identity_scopes),
        );
        if self.device_auto_approve {
            set(&mut root, keys::DEVICE_AUTO_APPROVE, json!(true));
        }
        set(
            &mut root,
            keys::ALLOWED_ORIGINS,
            json!(self.allowed_origins),
        );
        root
    }
}

/// Set `path` in `root`, creating the objects on the way.
pub fn set(root: &mut Value, path: &[&str], value: Value) {
    let mut cur = root;
    for (i, k) in path.iter().enumerate() {
        let Value::Object(map) = cur else { return };
        if i + 1 == path.len() {
            map.insert((*k).to_string(), value);
            return;
        }
        cur = map
            .entry((*k).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

pub fn get<'v>(root: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, k| v.get(*k))
}

/// Read an OpenClaw config file (JSON or JSON5).
pub fn read_gateway_config(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    json5::from_str::<Value>(&text).map_err(|e| {
        format!(
            "{}: not JSON or JSON5: {e} (pass the gateway's openclaw.json)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            upstream: "prod".into(),
            trusted_proxies: vec!["127.0.0.1".into()],
            user_header: "x-forwarded-user".into(),
            allow_loopback: true,
            allow_users: vec!["alice".into(), "bob".into()],
            identity_scopes: [
                ("alice".to_string(), vec!["operator.read".to_string()]),
                ("bob".to_string(), vec![]),
            ]
            .into_iter()
            .collect(),
            allowed_origins: vec!["https://alice.example.com".into()],
            device_auto_approve: true,
            notes: vec![],
        }
    }

    #[test]
    fn generated_block_matches_itself() {
        let e = expected();
        let v = e.to_json();
        assert_eq!(v["gateway"]["auth"]["mode"], "trusted-proxy");
        assert_eq!(v["gateway"]["trustedProxies"][0], "127.0.0.1");
        assert_eq!(v["gateway"]["auth"]["trustedProxy"]["allowUsers"][1], "bob");
        assert_eq!(
            v["gateway"]["controlUi"]["allowedOrigins"][0],
            "https://alice.example.com"
        );
        assert!(allowlist_drift(&e, &v).is_empty());
        assert!(trust_drift(&e, &v).is_empty());
    }

    #[test]
    fn drift_names_each_difference() {
        let e = expected();
        let mut v = e.to_json();
        v["gateway"]["auth"]["trustedProxy"]["allowUsers"] = json!(["alice", "carol"]);
        v["gateway"]["auth"]["identityScopes"]["alice"] = json!(["operator.admin"]);
        v["gateway"]["controlUi"]["allowedOrigins"] = json!([]);
        let d = allowlist_drift(&e, &v).join("\n");
        assert!(d.contains("missing [\"bob\"]"), "{d}");
        assert!(d.contains("not in clawgate [\"carol\"]"), "{d}");
        assert!(d.contains("identityScopes.alice"), "{d}");
        assert!(d.contains("allowedOrigins: missing"), "{d}");
    }

    #[test]
    fn json5_with_comments_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("openclaw.json");
        std::fs::write(
            &p,
            "// gateway\n{ gateway: { auth: { mode: 'trusted-proxy', }, }, }\n",
        )
        .unwrap();
        let v = read_gateway_config(&p).unwrap();
        assert_eq!(v["gateway"]["auth"]["mode"], "trusted-proxy");
    }
}
