//! The runbook commands, run as the real binary: `check` against fixture
//! config dirs (good, and each kind of bad), `gateway-config`, `probe`,
//! `oncall` and `suggest` against a live clawgate plus upstream, and
//! `explain` agreeing with the live proxy on a table of cases.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const CAROL: &str = "carol-token-0123456789";
const GATEWAY: &str = "http://127.0.0.1:18789";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Run the real binary, bounded to 60 s.
fn cli(args: &[&str]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env_remove("CLAWGATE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the clawgate binary starts");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let re = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("clawgate {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: ro.join().unwrap(),
        stderr: re.join().unwrap(),
    }
}

/// The same, from async tests whose runtime also serves clawgate.
async fn cli_async(args: Vec<String>) -> Out {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&a)
    })
    .await
    .unwrap()
}

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

/// The matrix row with this check name.
fn row<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no row '{check}' in {report:#}"))
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

// ---------------------------------------------------------------- check

#[test]
fn check_passes_a_good_config_and_lists_ports_and_members() {
    let cfg = good_dir();
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(failing(&r), Vec::<String>::new(), "{r:#}");
    assert_eq!(code, 0);
    assert_eq!(r["pass"], true);
    for section in [
        "config",
        "key compartments",
        "exposure",
        "observability",
        "rotation",
        "backup set",
    ] {
        assert!(
            r["rows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|row| row["section"] == section
                    && row["evidence"].as_str().is_some_and(|e| !e.is_empty())),
            "no row with evidence in section {section}"
        );
    }
    let ports = r["ports"].as_array().unwrap();
    let roles: Vec<&str> = ports.iter().map(|p| p["role"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["member", "admin", "upstream"]);
    assert_eq!(ports[2]["name"], "prod");
    assert_eq!(ports[2]["port"], 18789);
    assert_eq!(ports[2]["reach"], "loopback");
    assert_eq!(ports[0]["tls"], false);
    let alice = &r["members"][0];
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["permissions"], "600");
    assert_eq!(alice["file"], "members/alice.env");
    assert!(alice["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("tok_"));
    assert_eq!(alice["upstream"], "prod");
    assert_eq!(alice["scopes"][1], "operator.write");
    assert_eq!(alice["mode"], "enforce");
    assert!(alice["origins"]
        .as_array()
        .unwrap()
        .contains(&Value::from("https://alice.example.com")));
    let backup: Vec<&str> = r["backup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["path"].as_str().unwrap())
        .collect();
    assert!(backup.iter().any(|p| p.ends_with("clawgate.toml")));
    assert!(backup.iter().any(|p| p.ends_with("members/bob.env")));
    // nothing secret in any format
    for f in ["text", "json", "md"] {
        let out = cli(&[
            "check",
            "--config",
            cfg.path().to_str().unwrap(),
            "--format",
            f,
        ]);
        assert_eq!(out.code, 0);
        assert!(!out.stdout.contains(ALICE) && !out.stdout.contains(&sha256_hex(ALICE)));
    }
}

#[test]
fn a_large_backup_set_is_summed_up_in_the_table_and_listed_whole_in_json() {
    let names: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let tokens: Vec<String> = (0..20)
        .map(|i| format!("tok-backup-{i:02}-xxxxxxxx"))
        .collect();
    let specs: Vec<MemberSpec> = names
        .iter()
        .zip(&tokens)
        .map(|(n, t)| MemberSpec::new(n, t))
        .collect();
    let cfg = ConfigDir::new(&[("prod", GATEWAY.to_string())], &specs);
    let out = cli(&["check", "--config", cfg.path().to_str().unwrap()]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("backup set"))
        .unwrap_or_else(|| panic!("no backup row in {}", out.stdout));
    // clawgate.toml + 20 member files: 12 named, the other 9 counted.
    assert!(
        line.contains("and 9 more (all of them: --format json)"),
        "{line}"
    );
    assert!(!line.contains("members/m19.env"), "{line}");
    let (_, r) = check_json(cfg.path(), &[]);
    assert_eq!(r["backup"].as_array().unwrap().len(), 21);
}

#[test]
fn group_readable_member_file_fails_with_the_load_error() {
    let cfg = good_dir();
    let mut bob = MemberSpec::new("bob", BOB);
    bob.mode = 0o640;
    cfg.write_member(&bob);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let load = row(&r, "configuration loads");
    assert_eq!(load["status"], "fail");
    assert!(load["evidence"].as_str().unwrap().contains("bob.env"));
    assert!(load["evidence"].as_str().unwrap().contains("chmod 600"));
    assert!(r["load_error"]["file"]
        .as_str()
        .unwrap()
        .ends_with("members/bob.env"));
    let perm = row(&r, "member files readable by their owner only");
    assert_eq!(perm["status"], "fail");
    assert_eq!(perm["section"], "key compartments");
    assert!(perm["evidence"].as_str().unwrap().contains("640"));
}

#[test]
fn shared_token_hash_fails_key_compartments() {
    let cfg = good_dir();
    cfg.write_member(&MemberSpec::new("bob", ALICE));
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(row(&r, "configuration loads")["status"], "fail");
    let shared = row(&r, "no token shared between members");
    assert_eq!(shared["status"], "fail");
    assert_eq!(shared["section"], "key compartments");
    assert!(shared["evidence"]
        .as_str()
        .unwrap()
        .contains("alice and bob"));
    assert!(!serde_json::to_string(&r).unwrap().contains(ALICE));
}

#[test]
fn token_expiring_within_a_day_needs_a_successor() {
    let cfg = good_dir();
    let soon = rfc3339(SystemTime::now() + Duration::from_secs(2 * 3600));
    let alone = format!("{}@{soon}", sha256_hex(ALICE));
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("TOKEN_SHA256", &alone));
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let rot = row(&r, "no token expires within 24 h without a successor");
    assert_eq!(rot["status"], "fail");
    assert_eq!(rot["section"], "rotation");
    assert!(rot["evidence"]
        .as_str()
        .unwrap()
        .contains("clawgate token rotate alice"));
    assert_eq!(r["members"][0]["tokens"][0]["state"], "expiring");

    let with_successor = format!("{alone} {}", sha256_hex("alice-next-token-000"));
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("TOKEN_SHA256", &with_successor));
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(failing(&r), Vec::<String>::new());
    assert_eq!(code, 0);
}

#[test]
fn wildcard_origin_fails_exposure_with_file_and_line() {
    let cfg = good_dir();
    cfg.write_raw_member(
        "bob",
        &format!(
            "TOKEN_SHA256={}\nEGRESS_CIDRS=127.0.0.0/8\nORIGINS=\"*\"\n",
            sha256_hex(BOB)
        ),
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(r["load_error"]["line"], 3);
    let o = row(&r, "ORIGINS never allow every origin");
    assert_eq!(o["status"], "fail");
    assert_eq!(o["section"], "exposure");
    let text = cli(&["check", "--config", cfg.path().to_str().unwrap()]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("bob.env:3"), "{}", text.stdout);
    assert!(text.stdout.contains("RESULT: FAIL"));
}

#[test]
fn plain_http_member_listener_off_loopback_fails_exposure() {
    let cfg = good_dir();
    write_toml(
        &cfg,
        &base_toml("0.0.0.0:18443", "127.0.0.1:19180", "access.log", GATEWAY),
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let l = row(&r, "member listener is TLS or loopback-only");
    assert_eq!(l["status"], "fail");
    assert!(l["evidence"].as_str().unwrap().contains("tls_cert"));
    assert_eq!(r["ports"][0]["reach"], "any");
    assert_eq!(failing(&r), vec!["member listener is TLS or loopback-only"]);
}

#[test]
fn public_admin_listener_fails_unless_allowed() {
    let cfg = good_dir();
    write_toml(
        &cfg,
        &base_toml("127.0.0.1:18443", "0.0.0.0:19180", "access.log", GATEWAY),
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(row(&r, "admin listener on loopback")["status"], "fail");
    assert!(r["ports"][1]["conflicts"][0]
        .as_str()
        .unwrap()
        .contains("non-loopback"));

    let allowed = base_toml("127.0.0.1:18443", "0.0.0.0:19180", "access.log", GATEWAY)
        .replace("[admin]\n", "[admin]\nallow_public = true\n");
    write_toml(&cfg, &allowed);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(row(&r, "admin listener on loopback")["status"], "pass");
    assert_eq!(code, 0, "{r:#}");
}

#[test]
fn access_log_off_fails_observability() {
    let cfg = good_dir();
    write_toml(
        &cfg,
        &base_toml("127.0.0.1:18443", "127.0.0.1:19180", "off", GATEWAY),
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let a = row(&r, "access log on");
    assert_eq!(a["status"], "fail");
    assert_eq!(a["section"], "observability");
}

#[test]
fn audit_mode_member_fails_key_compartments_with_evidence() {
    let cfg = good_dir();
    cfg.write_member(&MemberSpec::new("bob", BOB).set("MODE", "audit"));
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let m = row(&r, "every member enforced (MODE=enforce)");
    assert_eq!(m["status"], "fail");
    assert_eq!(m["section"], "key compartments");
    assert!(m["evidence"].as_str().unwrap().contains("bob: MODE=audit"));
    assert_eq!(r["members"][1]["mode"], "audit");
}

#[test]
fn port_clash_and_proxy_loop_are_conflicts() {
    let cfg = good_dir();
    write_toml(
        &cfg,
        &base_toml(
            "127.0.0.1:18080",
            "127.0.0.1:18080",
            "access.log",
            "http://127.0.0.1:18080",
        ),
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let c = row(&r, "no port clashes or proxy loops");
    assert_eq!(c["status"], "fail");
    let ev = c["evidence"].as_str().unwrap();
    assert!(ev.contains("same port"), "{ev}");
    assert!(ev.contains("would loop"), "{ev}");
    assert!(!r["ports"][2]["conflicts"].as_array().unwrap().is_empty());
}

#[test]
fn non_loopback_upstream_is_a_conflict() {
    let cfg = good_dir();
    write_toml(
        &cfg,
        &base_toml(
            "127.0.0.1:18443",
            "127.0.0.1:19180",
            "access.log",
            "http://192.0.2.10:18789",
        ),
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(row(&r, "upstreams on loopback")["status"], "fail");
    assert_eq!(r["ports"][2]["reach"], "any");
}

#[test]
fn missing_tls_file_fails_the_backup_set() {
    let cfg = good_dir();
    let toml = base_toml("127.0.0.1:18443", "127.0.0.1:19180", "access.log", GATEWAY).replace(
        "[listen]\n",
        "[listen]\ntls_cert = \"tls/server.crt\"\ntls_key = \"tls/server.key\"\n",
    );
    write_toml(&cfg, &toml);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(row(&r, "configuration loads")["status"], "fail");
    let b = row(&r, "backup set present");
    assert_eq!(b["status"], "fail");
    assert_eq!(b["section"], "backup set");
    assert!(b["evidence"].as_str().unwrap().contains("tls/server.crt"));
}

#[test]
fn toml_error_is_a_failing_row_with_file_and_line() {
    let cfg = good_dir();
    write_toml(
        &cfg,
        "[listen]\naddr = \"127.0.0.1:0\"\nadress = \"x\"\n[upstreams.prod]\nurl = \"http://127.0.0.1:1\"\n",
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(r["load_error"]["line"], 3);
    assert!(r["load_error"]["file"]
        .as_str()
        .unwrap()
        .ends_with("clawgate.toml"));
    let ev = row(&r, "configuration loads")["evidence"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ev.contains("clawgate.toml:3"), "{ev}");
}

#[test]
fn markdown_format_is_a_ticket_page() {
    let cfg = good_dir();
    let out = cli(&[
        "check",
        "--config",
        cfg.path().to_str().unwrap(),
        "--format",
        "md",
    ]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("### Sign-off matrix"));
    assert!(out
        .stdout
        .contains("| status | section | check | evidence |"));
    assert!(out.stdout.contains("### Ports and binds"));
    assert!(out.stdout.contains("### Members (env-file map)"));
    assert!(out.stdout.contains("RESULT: PASS"));
}

// ---------------------------------------------------------- gateway-config

#[test]
fn gateway_config_block_matches_the_members() {
    let cfg = good_dir();
    cfg.write_member(&MemberSpec::new("bob", BOB).set(
        "ORIGINS",
        "https://bob.example.com none https://alice.example.com",
    ));
    let out = cli(&["gateway-config", "--config", cfg.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let gw = &v["gateway"];
    assert_eq!(gw["auth"]["mode"], "trusted-proxy");
    assert_eq!(gw["trustedProxies"], serde_json::json!(["127.0.0.1"]));
    let tp = &gw["auth"]["trustedProxy"];
    assert_eq!(tp["userHeader"], "x-forwarded-user");
    assert_eq!(tp["allowLoopback"], true);
    assert_eq!(tp["allowUsers"], serde_json::json!(["alice", "bob"]));
    assert_eq!(
        gw["auth"]["identityScopes"],
        serde_json::json!({"alice": ["operator.read", "operator.write"], "bob": ["operator.read"]})
    );
    assert_eq!(
        gw["controlUi"]["allowedOrigins"],
        serde_json::json!(["https://alice.example.com", "https://bob.example.com"])
    );
}

#[test]
fn check_fails_when_the_gateway_config_drifts() {
    let cfg = good_dir();
    let out = cli(&["gateway-config", "--config", cfg.path().to_str().unwrap()]);
    assert_eq!(out.code, 0);
    let gw_file = cfg.path().join("openclaw.json");
    std::fs::write(&gw_file, &out.stdout).unwrap();
    let gw = gw_file.to_str().unwrap();
    let (code, r) = check_json(cfg.path(), &["--gateway-config", gw]);
    assert_eq!(failing(&r), Vec::<String>::new(), "{r:#}");
    assert_eq!(code, 0);
    assert_eq!(
        row(&r, "gateway allowlists match members")["section"],
        "gateway"
    );

    // JSON5, with a comment, bob missing and an origin nobody has
    let mut v = out.json();
    v["gateway"]["auth"]["trustedProxy"]["allowUsers"] = serde_json::json!(["alice"]);
    v["gateway"]["controlUi"]["allowedOrigins"] = serde_json::json!([
        "https://alice.example.com",
        "https://bob.example.com",
        "https://evil.example.net"
    ]);
    std::fs::write(
        &gw_file,
        format!(
            "// hand-edited\n{}",
            serde_json::to_string_pretty(&v).unwrap()
        ),
    )
    .unwrap();
    let (code, r) = check_json(cfg.path(), &["--gateway-config", gw]);
    assert_eq!(code, 1);
    let d = row(&r, "gateway allowlists match members");
    assert_eq!(d["status"], "fail");
    let ev = d["evidence"].as_str().unwrap();
    assert!(ev.contains("allowUsers: missing [\"bob\"]"), "{ev}");
    assert!(ev.contains("evil.example.net"), "{ev}");
    assert_eq!(
        row(&r, "gateway trusts clawgate in trusted-proxy mode")["status"],
        "pass"
    );

    std::fs::write(&gw_file, "{ not json").unwrap();
    let (code, r) = check_json(cfg.path(), &["--gateway-config", gw]);
    assert_eq!(code, 1);
    assert!(row(&r, "gateway allowlists match members")["evidence"]
        .as_str()
        .unwrap()
        .contains("JSON5"));
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "run",
        "check",
        "explain",
        "token",
        "probe",
        "gateway-config",
        "oncall",
        "suggest",
    ] {
        let out = cli(&[cmd, "--help"]);
        assert_eq!(out.code, 0, "{cmd} --help: {}", out.stderr);
        assert!(out.stdout.contains("Usage:"), "{cmd}");
    }
}

// ------------------------------------------------------------ live proxy

async fn live(
    members: &[MemberSpec],
    extra_toml: &str,
) -> (Upstream, ConfigDir, clawgate::server::Server) {
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

#[tokio::test]
async fn probe_passes_http_and_websocket_through_a_live_proxy() {
    let (up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["pass"], true);
    let http = &v["steps"][0];
    assert_eq!(http["step"], "http");
    assert_eq!(http["status"], 200);
    assert!(is_uuid_v7(http["request_id"].as_str().unwrap()));
    assert!(http["latency_ms"].as_f64().is_some());
    let ws = &v["steps"][1];
    assert_eq!(ws["step"], "websocket");
    assert_eq!(ws["status"], 101);
    assert_eq!(ws["pass"], true);
    assert!(ws["detail"].as_str().unwrap().contains("echoed"));
    assert!(ws["round_trip_ms"].as_f64().is_some());
    assert!(up.count() >= 2);
    assert!(
        !out.stdout.contains(ALICE),
        "the token must never be printed"
    );

    let text = cli_async(s(&["probe", &url, "--token-file", &tf, "--ws-path", "/ws"])).await;
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("verdict: PASS"), "{}", text.stdout);
    assert!(!text.stdout.contains(ALICE));
}

#[tokio::test]
async fn probe_counts_a_server_that_speaks_first_as_a_websocket_pass() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws-headers",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let ws = &out.json()["steps"][1];
    assert_eq!(ws["status"], 101);
    assert!(
        ws["detail"]
            .as_str()
            .unwrap()
            .contains("first frame from the server"),
        "{ws:#}"
    );
}

#[tokio::test]
async fn probe_denied_prints_the_403_diff_and_fails() {
    let (up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let args = [
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws",
        "--origin",
        "http://alice.example.com",
    ];
    let mut json_args = s(&args);
    json_args.extend(s(&["--format", "json"]));
    let out = cli_async(json_args).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["pass"], false);
    for step in v["steps"].as_array().unwrap() {
        assert_eq!(step["status"], 403, "{step:#}");
        assert_eq!(step["reason"], "origin_not_allowed");
        assert_eq!(
            step["diff"]["origin"]["nearest"],
            "https://alice.example.com"
        );
        assert!(step["request_id"].as_str().is_some());
    }
    assert_eq!(up.count(), 0);
    let text = cli_async(s(&args)).await;
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("hint"), "{}", text.stdout);
    assert!(text.stdout.contains("scheme differs"), "{}", text.stdout);
    assert!(text.stdout.contains("verdict: FAIL"));

    let bad = cfg.path().join("bad.token");
    std::fs::write(&bad, "not-a-member-token\n").unwrap();
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        bad.to_str().unwrap(),
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["steps"][0]["status"], 401);
}

#[tokio::test]
async fn probe_rejects_usage_errors_before_connecting() {
    let out = cli_async(s(&["probe", "http://127.0.0.1:1/"])).await;
    assert_eq!(out.code, 2, "a credential is required");
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("t");
    std::fs::write(&tf, "x\n").unwrap();
    let out = cli_async(s(&[
        "probe",
        "https://127.0.0.1:1/",
        "--token-file",
        tf.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--ca"), "{}", out.stderr);
}

/// A small PKI written as PEM files: CA, server cert for 127.0.0.1, client.
struct Pem {
    dir: tempfile::TempDir,
    client_sha256: String,
}

impl Pem {
    fn new() -> Pem {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "probe test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut srv = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let srv_key = KeyPair::generate().unwrap();
        let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).unwrap();
        let mut cli = CertificateParams::new(Vec::<String>::new()).unwrap();
        cli.distinguished_name.push(DnType::CommonName, "alice");
        cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cli_key = KeyPair::generate().unwrap();
        let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();
        let w = |n: &str, t: String| std::fs::write(dir.path().join(n), t).unwrap();
        w("ca.pem", ca_cert.pem());
        w("server.pem", srv_cert.pem());
        w("server.key", srv_key.serialize_pem());
        w("client.pem", cli_cert.pem());
        w("client.key", cli_key.serialize_pem());
        Pem {
            client_sha256: sha256_hex_bytes(cli_cert.der()),
            dir,
        }
    }

    fn path(&self, n: &str) -> String {
        self.dir.path().join(n).to_str().unwrap().to_string()
    }
}

fn sha256_hex_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test]
async fn probe_over_mtls_with_a_client_certificate() {
    let pem = Pem::new();
    let up = Upstream::start().await;
    let alice = MemberSpec::new("alice", ALICE)
        .unset("TOKEN_SHA256")
        .set("CERT_SHA256", &pem.client_sha256);
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &[alice],
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca = \"{}\"\nclient_auth = \"required\"\n",
            pem.path("server.pem"),
            pem.path("server.key"),
            pem.path("ca.pem")
        ),
    );
    let server = start(&cfg).await;
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let out = cli_async(s(&[
        "probe",
        &url,
        "--cert",
        &pem.path("client.pem"),
        "--key",
        &pem.path("client.key"),
        "--ca",
        &pem.path("ca.pem"),
        "--ws-path",
        "/ws",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["steps"][0]["status"], 200);
    assert_eq!(v["steps"][1]["status"], 101);
    assert!(v["credential"]
        .as_str()
        .unwrap()
        .contains(&pem.client_sha256));
    assert_eq!(v["server_cert_sha256"].as_str().unwrap().len(), 64);

    // --insecure skips verification but still presents the client cert
    let out = cli_async(s(&[
        "probe",
        &url,
        "--cert",
        &pem.path("client.pem"),
        "--key",
        &pem.path("client.key"),
        "--insecure",
        "--ws-path",
        "/ws",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("server certificate sha256"));
}

// ----------------------------------------------------- explain vs live

#[tokio::test]
async fn explain_and_the_live_proxy_agree() {
    let past = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let expired = "alice-old-token-0123456789";
    let alice = MemberSpec::new("alice", ALICE)
        .set(
            "TOKEN_SHA256",
            &format!("{} {}@{past}", sha256_hex(ALICE), sha256_hex(expired)),
        )
        .set("EGRESS_CIDRS", "127.0.0.0/8 10.0.0.0/8");
    let bob = MemberSpec::new("bob", BOB).set("ORIGINS", "https://bob.example.com");
    let carol = MemberSpec::new("carol", CAROL).set("MODE", "audit");
    let (_up, cfg, server) = live(
        &[alice, bob, carol],
        "[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.1/32\"]\n",
    )
    .await;
    let dir = cfg.path().to_str().unwrap().to_string();
    // token | Origin | client ip | path  →  status | reason ("-": none)
    let cases = "
        alice | -                         | 127.0.0.1 | /        | 200 | -
        alice | https://alice.example.com | 10.1.2.3  | /        | 200 | -
        alice | http://alice.example.com  | 127.0.0.1 | /        | 403 | origin_not_allowed
        alice | -                         | 192.0.2.7 | /        | 403 | cidr_not_allowed
        bob   | -                         | 127.0.0.1 | /        | 403 | origin_missing
        bob   | https://bob.example.com   | 127.0.0.1 | /        | 200 | -
        bogus | -                         | 127.0.0.1 | /        | 401 | bad_token
        -     | -                         | 127.0.0.1 | /        | 401 | no_credentials
        old   | -                         | 127.0.0.1 | /        | 401 | token_expired
        carol | https://evil.example.net  | 127.0.0.1 | /        | 200 | origin_not_allowed
        -     | -                         | 127.0.0.1 | /hooks/x | 200 | -
        -     | -                         | 192.0.2.7 | /hooks/x | 403 | cidr_not_allowed
    ";
    let opt = |v: &str| (v != "-").then(|| v.to_string());
    for line in cases.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let token = match f[0] {
            "alice" => Some(ALICE),
            "bob" => Some(BOB),
            "carol" => Some(CAROL),
            "old" => Some(expired),
            "bogus" => Some("not-a-token"),
            _ => None,
        };
        let (origin, ip, path) = (opt(f[1]), f[2], f[3]);
        let status: u16 = f[4].parse().unwrap();
        let reason = opt(f[5]);
        let mut args = s(&[
            "explain", "--config", &dir, "--ip", ip, "--path", path, "--format", "json",
        ]);
        if let Some(t) = token {
            args.extend(s(&["--token", t]));
        }
        if let Some(o) = &origin {
            args.extend(s(&["--origin", o]));
        }
        let offline = cli_async(args).await.json();

        let mut headers: Vec<(&str, String)> = vec![("x-forwarded-for", ip.to_string())];
        if let Some(t) = token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        if let Some(o) = &origin {
            headers.push(("origin", o.clone()));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(server.addr, path, &h).await;
        let live_reason = if r.status >= 400 {
            r.json()["reason"].as_str().map(str::to_string)
        } else {
            cfg.log_line(r.request_id()).await["reason"]
                .as_str()
                .map(str::to_string)
        };
        assert_eq!(r.status, status, "live status for {line}");
        assert_eq!(
            offline["status"], status,
            "explain status for {line}: {offline:#}"
        );
        assert_eq!(live_reason, reason, "live reason for {line}");
        assert_eq!(
            offline["reason"].as_str(),
            reason.as_deref(),
            "explain reason for {line}"
        );
    }
}

// ------------------------------------------------------------- oncall

#[tokio::test]
async fn oncall_reports_upstreams_denials_and_the_log_tail() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let auth = format!("Bearer {ALICE}");
    let ok = get(server.addr, "/", &[("authorization", &auth)]).await;
    assert_eq!(ok.status, 200);
    let denied = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("origin", "https://evil.example.net"),
        ],
    )
    .await;
    assert_eq!(denied.status, 403);
    cfg.log_line(denied.request_id()).await;
    let admin = format!("http://{}", server.admin_addr);
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "oncall", "--config", &dir, "--admin", &admin, "--lines", "5", "--format", "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["check"]["pass"], true);
    assert_eq!(v["upstreams"][0]["name"], "prod");
    assert_eq!(v["upstreams"][0]["reachable"], true);
    assert!(v["upstreams"][0]["connect_ms"].as_f64().is_some());
    assert_eq!(v["admin"]["reachable"], true);
    let denials = v["denials"].as_array().unwrap();
    assert!(
        denials.iter().any(|d| d["member"] == "alice"
            && d["reason"] == "origin_not_allowed"
            && d["count"] == 1),
        "{denials:?}"
    );
    assert_eq!(v["access_log"]["destination"], "file");
    let lines = v["access_log"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 5);
    assert!(lines
        .iter()
        .any(|l| l.as_str().unwrap().contains(denied.request_id())));

    let text = cli_async(s(&["oncall", "--config", &dir, "--admin", &admin])).await;
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("== DENIALS"));
    assert!(text.stdout.contains("origin_not_allowed"));
    assert!(!text.stdout.contains(ALICE));
}

#[tokio::test]
async fn oncall_says_when_the_admin_listener_is_unreachable_and_carries_on() {
    let (_up, cfg, _server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let admin = format!("http://{}", closed_port());
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "oncall", "--config", &dir, "--admin", &admin, "--format", "json",
    ]))
    .await;
    assert_eq!(out.code, 1);
    let v = out.json();
    assert_eq!(v["admin"]["reachable"], false);
    assert!(v["admin"]["error"].as_str().unwrap().contains("--admin"));
    assert_eq!(v["upstreams"][0]["reachable"], true);
    assert_eq!(v["check"]["pass"], true);
    let text = cli_async(s(&["oncall", "--config", &dir, "--admin", &admin])).await;
    assert!(text.stdout.contains("UNREACHABLE"), "{}", text.stdout);
    assert!(text.stdout.contains("== ACCESS LOG"));
}

// ------------------------------------------------------------- suggest

#[tokio::test]
async fn suggest_proposes_the_env_change_with_counts() {
    let carol = MemberSpec::new("carol", CAROL).set("MODE", "audit");
    let (_up, _cfg, server) = live(&[MemberSpec::new("alice", ALICE), carol], "").await;
    let sg = &server.state.suggest;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    sg.record("carol", Some("https://new.example.com"), ip("10.9.8.7"));
    sg.record("carol", Some("https://new.example.com"), ip("10.9.8.7"));
    sg.record("carol", Some("https://carol.example.com"), ip("10.9.8.8"));
    // allowed origin and address: nothing to suggest for alice
    sg.record("alice", Some("https://alice.example.com"), ip("127.0.0.1"));
    let admin = format!("http://{}", server.admin_addr);
    let out = cli_async(s(&["suggest", "--admin", &admin, "--format", "json"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{v:#}");
    let c = &members[0];
    assert_eq!(c["member"], "carol");
    assert_eq!(c["mode"], "audit");
    assert_eq!(
        c["origins"],
        serde_json::json!([{"value": "https://new.example.com", "count": 2}])
    );
    assert_eq!(
        c["networks"],
        serde_json::json!([{"value": "10.9.8.7/32", "count": 2}, {"value": "10.9.8.8/32", "count": 1}])
    );

    let text = cli_async(s(&["suggest", "--admin", &admin, "--member", "carol"])).await;
    assert_eq!(text.code, 0);
    assert!(
        text.stdout
            .contains("ORIGINS=\"none https://carol.example.com https://new.example.com\""),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("10.9.8.7/32 (2 requests)"),
        "{}",
        text.stdout
    );
    assert!(text
        .stdout
        .contains("EGRESS_CIDRS=\"127.0.0.0/8 ::1/128 10.9.8.7/32 10.9.8.8/32\""));
    assert!(text.stdout.contains("MODE=enforce"));

    let none = cli_async(s(&["suggest", "--admin", &admin, "--member", "alice"])).await;
    assert!(none.stdout.contains("nothing to suggest for alice"));

    let down = cli_async(s(&[
        "suggest",
        "--admin",
        &format!("http://{}", closed_port()),
    ]))
    .await;
    assert_eq!(down.code, 2);
    assert!(down.stderr.contains("--admin"));
}

#[tokio::test]
async fn suggest_sees_what_the_live_proxy_refused_in_audit_mode() {
    let carol = MemberSpec::new("carol", CAROL).set("MODE", "audit");
    let (_up, _cfg, server) = live(&[carol], "").await;
    let auth = format!("Bearer {CAROL}");
    for _ in 0..3 {
        let r = get(
            server.addr,
            "/",
            &[
                ("authorization", &auth),
                ("origin", "https://staging.example.com"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "audit mode lets it pass");
    }
    let admin = format!("http://{}", server.admin_addr);
    let out = cli_async(s(&["suggest", "--admin", &admin, "--member", "carol"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("# ORIGINS would need: https://staging.example.com (3 requests)"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("EGRESS_CIDRS="),
        "loopback is already allowed: {}",
        out.stdout
    );
}
