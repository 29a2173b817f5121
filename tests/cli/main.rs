//! The runbook commands, run as the real binary: `check` against fixture
//! config dirs (good, and each kind of bad), `gateway-config`, `probe`,
//! `oncall` and `suggest` against a live clawgate plus upstream, `explain`
//! agreeing with the live proxy on a table of cases, and a member's life
//! (`member add|remove|list`, `token new|rotate|revoke|prune`) seen
//! through a reloaded `clawgate run`.

mod backup;
mod check;
mod check_stacks;
mod check_tls;
#[path = "../common/mod.rs"]
mod common;
mod explain;
mod gateway_config;
mod member;
mod member_list;
mod oncall;
mod plan;
mod plan_replay;
mod probe;
mod suggest;
mod token;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::Value;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const CAROL: &str = "carol-token-0123456789";
const GATEWAY: &str = "http://127.0.0.1:18789";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn check_json(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let d = dir.to_str().unwrap();
    let mut args = vec!["check", "--config", d, "--format", "json"];
    args.extend_from_slice(extra);
    let out = cli(&args);
    (out.code, out.json())
}

/// The element of the JSON array `v[list]` whose `field` is `value`.
fn find<'a>(v: &'a Value, list: &str, field: &str, value: &str) -> &'a Value {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no array '{list}' in {v:#}"))
        .iter()
        .find(|e| e[field] == value)
        .unwrap_or_else(|| panic!("no {list} element with {field} = '{value}' in {v:#}"))
}

/// The matrix row with this check name.
fn row<'a>(report: &'a Value, check: &str) -> &'a Value {
    find(report, "rows", "check", check)
}

fn failing(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "fail")
        .map(|r| r["check"].as_str().unwrap().to_string())
        .collect()
}

fn good_dir() -> ConfigDir {
    ConfigDir::new(
        &[("prod", GATEWAY.to_string())],
        &[
            MemberSpec::new("alice", ALICE).set("SCOPES", "operator.read operator.write"),
            MemberSpec::new("bob", BOB),
        ],
    )
}

/// Replace clawgate.toml with `toml` (for listener/admin/log variants).
fn write_toml(cfg: &ConfigDir, toml: &str) {
    std::fs::write(cfg.path().join("clawgate.toml"), toml).unwrap();
}

fn base_toml(listen: &str, admin: &str, access: &str, upstream: &str) -> String {
    format!(
        "[listen]\naddr = \"{listen}\"\n\n[admin]\naddr = \"{admin}\"\n\n[log]\naccess = \"{access}\"\n\n[upstreams.prod]\nurl = \"{upstream}\"\n"
    )
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A clawgate with `members`, routed to a fresh upstream.
async fn live(
    members: &[MemberSpec],
    extra_toml: &str,
) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], members);
    cfg.write_base(extra_toml);
    let server = start(&cfg).await;
    (up, cfg, server)
}

fn token_file(cfg: &ConfigDir, token: &str) -> String {
    let p = cfg.path().join(format!("{}.token", &token[..5]));
    std::fs::write(&p, format!("{token}\n")).unwrap();
    p.to_str().unwrap().to_string()
}

/// The service account of these tests (`nobody` on Debian).
const SERVICE: u32 = 65534;

/// The value after `label` on the line starting with it.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' line in:\n{out}"))
        .trim()
}

fn owner_group_mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// chown -R `uid:uid` the whole tree.
fn chown_tree(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).expect("chown (these tests run as root)");
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// The real proxy, run as the service user (who owns the config
/// directory), as in production.
fn proxy_as_service(cfg: &ConfigDir) -> Proc {
    chown_tree(cfg.path(), SERVICE);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clawgate"));
    cmd.uid(SERVICE).gid(SERVICE);
    Proc::start_with(cfg, cmd)
}
