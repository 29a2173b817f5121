//! Broken config directories are refused with the file, the line and what
//! to do: by `config::load` (what reload and `check` use) and by the real
//! binary, which must exit non-zero instead of serving a half-read config.

mod common;

use std::path::Path;

use clawgate::config::{self, ConfigError};
use common::*;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

/// A valid two-upstream config with alice; tests break one thing each.
fn config_dir() -> ConfigDir {
    ConfigDir::new(
        &[
            ("prod", "http://127.0.0.1:18789".into()),
            ("staging", "http://127.0.0.1:18790".into()),
        ],
        &[MemberSpec::new("alice", ALICE)],
    )
}

fn refused(dir: &Path) -> ConfigError {
    match config::load(dir) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => e,
    }
}

/// 1-based line of the first line of `text` that starts with `prefix`.
fn line_starting(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix} in {text}"))
        + 1
}

#[test]
fn the_valid_starting_point_loads() {
    let cfg = config_dir();
    let snap = config::load(cfg.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.members.len(), 1);
}

#[test]
fn group_readable_member_file_is_refused_with_chmod_600() {
    let cfg = config_dir();
    let mut bob = MemberSpec::new("bob", BOB);
    bob.mode = 0o644;
    cfg.write_member(&bob);
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    assert!(e.reason.contains("chmod 600"), "{e}");
    assert!(e.to_string().contains("bob.env"), "{e}");
}

#[test]
fn unknown_key_in_clawgate_toml_is_refused_with_its_line() {
    let cfg = config_dir();
    let extra = "[timeouts]\nupstream_respons = \"1s\"\n";
    cfg.write_base(extra);
    let text = std::fs::read_to_string(cfg.path().join("clawgate.toml")).unwrap();
    let line = line_starting(&text, "upstream_respons");
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.path().join("clawgate.toml"));
    assert_eq!(e.line_number(), Some(line), "{e}");
    assert!(e.reason.contains("upstream_respons"), "{e}");
    assert!(
        e.to_string().contains(&format!("clawgate.toml:{line}:")),
        "{e}"
    );
}

#[test]
fn unknown_table_in_clawgate_toml_is_refused_with_its_line() {
    let cfg = config_dir();
    cfg.write_base("[limit]\nmax_body_bytes = 10\n");
    let text = std::fs::read_to_string(cfg.path().join("clawgate.toml")).unwrap();
    let e = refused(cfg.path());
    assert_eq!(
        e.line_number(),
        Some(line_starting(&text, "[limit]")),
        "{e}"
    );
    assert!(e.reason.contains("limit"), "{e}");
}

#[test]
fn unknown_key_in_a_member_file_names_its_line() {
    let cfg = config_dir();
    cfg.write_raw_member(
        "bob",
        &format!(
            "# bob's compartment\nTOKEN_SHA256={}\nORIGINS=none\nEGRESS_CIDR=127.0.0.0/8\n",
            sha256_hex(BOB)
        ),
    );
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    assert_eq!(e.line_number(), Some(4), "{e}");
    assert!(e.reason.contains("EGRESS_CIDR"), "{e}");
    assert!(e.to_string().contains("bob.env:4:"), "{e}");
}

#[test]
fn upstream_naming_a_missing_upstream_names_the_file_and_line() {
    let cfg = config_dir();
    let bob = MemberSpec::new("bob", BOB).set("UPSTREAM", "stagin");
    cfg.write_member(&bob);
    let line = line_starting(&bob.render(), "UPSTREAM=");
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    assert_eq!(e.line_number(), Some(line), "{e}");
    assert!(e.reason.contains("'stagin'"), "{e}");
    assert!(
        e.reason.contains("prod") && e.reason.contains("staging"),
        "the defined upstreams are listed: {e}"
    );
    assert!(e.to_string().contains(&format!("bob.env:{line}:")), "{e}");
}

#[test]
fn two_members_sharing_a_token_hash_are_refused() {
    let cfg = config_dir();
    let bob = MemberSpec::new("bob", ALICE);
    cfg.write_member(&bob);
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    let line = line_starting(&bob.render(), "TOKEN_SHA256=");
    assert_eq!(e.line_number(), Some(line), "{e}");
    assert!(e.reason.contains("'alice'"), "names the other member: {e}");
    assert!(e.reason.contains("alice.env"), "names the other file: {e}");
    assert!(!e.to_string().contains(ALICE), "never prints a token: {e}");
}

#[test]
fn missing_origins_says_what_to_write() {
    let cfg = config_dir();
    cfg.write_member(&MemberSpec::new("bob", BOB).unset("ORIGINS"));
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    assert!(e.reason.contains("ORIGINS"), "{e}");
    assert!(e.reason.contains("ORIGINS=none"), "{e}");
}

#[test]
fn missing_egress_cidrs_says_what_to_write() {
    let cfg = config_dir();
    cfg.write_member(&MemberSpec::new("bob", BOB).unset("EGRESS_CIDRS"));
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    assert!(e.reason.contains("EGRESS_CIDRS"), "{e}");
    assert!(e.reason.contains("0.0.0.0/0"), "{e}");
}

#[test]
fn the_binary_exits_non_zero_on_a_broken_dir_printing_file_and_line() {
    let cfg = config_dir();
    cfg.write_raw_member(
        "bob",
        &format!(
            "TOKEN_SHA256={}\nORIGINS=none\nEGRESS_CIDR=127.0.0.0/8\n",
            sha256_hex(BOB)
        ),
    );
    // Bounded: a `run` that kept running on a broken config panics.
    let out = cli(&["run", "--config", cfg.path().to_str().unwrap()]);
    let stderr = &out.stderr;
    assert!(out.code != 0, "exit status {}; stderr: {stderr}", out.code);
    let want = format!("{}:3:", cfg.member_path("bob").display());
    assert!(stderr.contains(&want), "stderr lacks {want}: {stderr}");
    assert!(stderr.contains("EGRESS_CIDR"), "{stderr}");
}

#[test]
fn public_prefix_that_no_checked_request_could_match_is_refused() {
    for prefix in ["/hooks/../", "/%68ooks/", "//hooks/", "/hooks%2f"] {
        let cfg = config_dir();
        cfg.write_base(&format!(
            "[[public]]\npath_prefix = \"{prefix}\"\nsource_cidrs = [\"127.0.0.1/32\"]\n"
        ));
        let e = refused(cfg.path());
        assert!(e.reason.contains("not a plain path"), "{prefix}: {e}");
        assert!(
            e.to_string().contains("public[0].path_prefix"),
            "{prefix}: {e}"
        );
    }
}

/// The config dir with `[admin]` bound to every interface, plus `admin_extra`
/// lines inside `[admin]`.
fn public_admin_dir(admin_extra: &str) -> ConfigDir {
    let mut cfg = config_dir();
    let loopback = "[admin]\naddr = \"127.0.0.1:0\"\n";
    assert!(cfg.base.contains(loopback));
    cfg.base = cfg.base.replace(
        loopback,
        &format!("[admin]\naddr = \"0.0.0.0:0\"\n{admin_extra}"),
    );
    cfg.write_base("");
    cfg
}

const ADMIN_FIX: &str = "bind [admin] addr to 127.0.0.1, or set allow_public = true";

#[test]
fn a_public_admin_address_without_consent_is_refused_with_its_line_and_fix() {
    let cfg = public_admin_dir("");
    let text = std::fs::read_to_string(cfg.path().join("clawgate.toml")).unwrap();
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.path().join("clawgate.toml"));
    // The `addr` under [admin], not the one under [listen].
    let line = text.lines().position(|l| l.contains("0.0.0.0:0")).unwrap() + 1;
    assert_eq!(e.line_number(), Some(line), "{e}");
    assert!(e.reason.contains(ADMIN_FIX), "{e}");
    assert!(e.reason.contains("/metrics"), "says why: {e}");
}

#[test]
fn run_refuses_to_start_a_public_admin_listener_without_allow_public() {
    let cfg = public_admin_dir("");
    // Bounded: a `run` that started anyway would be killed and fail here.
    let out = cli(&["run", "--config", cfg.path().to_str().unwrap()]);
    let stderr = &out.stderr;
    assert!(out.code != 0, "exit status {}; stderr: {stderr}", out.code);
    assert!(stderr.contains("clawgate.toml:"), "{stderr}");
    assert!(stderr.contains(ADMIN_FIX), "{stderr}");
}

#[tokio::test]
async fn run_starts_a_public_admin_listener_with_allow_public() {
    let cfg = public_admin_dir("allow_public = true\n");
    let p = Proc::start(&cfg);
    assert!(p.admin.ip().is_unspecified(), "admin on {}", p.admin);
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], p.admin.port()));
    assert_eq!(get(local, "/healthz", &[]).await.status, 200);
}

#[tokio::test]
async fn a_reload_to_a_public_admin_address_is_refused_and_the_old_config_stays() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    std::fs::write(
        cfg.path().join("clawgate.toml"),
        cfg.base.replace(
            "[admin]\naddr = \"127.0.0.1:0\"",
            "[admin]\naddr = \"0.0.0.0:0\"",
        ),
    )
    .unwrap();
    let e = server.reload().expect_err("reload accepted a public admin");
    assert!(e.reason.contains(ADMIN_FIX), "{e}");
    assert_eq!(server.state.snapshot().generation, 0);
    assert!(server.state.snapshot().admin.addr.ip().is_loopback());
    let reply = get(server.addr, "/api/x", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(reply.status, 200);
}

#[test]
fn a_cidr_with_host_bits_is_refused_with_the_network_meant_file_and_line() {
    let cfg = config_dir();
    let bob = MemberSpec::new("bob", BOB).set("EGRESS_CIDRS", "10.0.0.0/8 203.0.113.5/24");
    cfg.write_member(&bob);
    let line = line_starting(&bob.render(), "EGRESS_CIDRS=");
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.member_path("bob"));
    assert_eq!(e.line_number(), Some(line), "{e}");
    assert!(e.reason.contains("did you mean 203.0.113.0/24?"), "{e}");
    // The real binary says the same, with file and line.
    let out = cli(&["check", "--config", cfg.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let want = format!(
        "{}:{line}: EGRESS_CIDRS: '203.0.113.5/24' has host bits set: did you mean 203.0.113.0/24?",
        cfg.member_path("bob").display()
    );
    assert!(out.stdout.contains(&want), "no '{want}' in {}", out.stdout);
}

/// clawgate.toml with `extra` appended and `default_upstream` set to
/// `default`, its text, and the refusal.
fn refused_toml(extra: &str, default: &str) -> (ConfigDir, String, ConfigError) {
    let mut cfg = config_dir();
    cfg.base = cfg.base.replace(
        "default_upstream = \"prod\"",
        &format!("default_upstream = \"{default}\""),
    );
    cfg.write_base(extra);
    let text = std::fs::read_to_string(cfg.path().join("clawgate.toml")).unwrap();
    let e = refused(cfg.path());
    assert_eq!(e.file, cfg.path().join("clawgate.toml"));
    (cfg, text, e)
}

#[test]
fn references_inside_clawgate_toml_name_their_line() {
    let cases = [
        (
            "[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.1/32\"]\nupstream = \"prd\"\n",
            "upstream = \"prd\"",
            "public[0].upstream: no upstream named 'prd'; defined: prod, staging",
        ),
        (
            "",
            "default_upstream",
            "members.default_upstream: no upstream named 'stagin'",
        ),
        (
            "[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"203.0.113.5/24\"]\nupstream = \"prod\"\n",
            "source_cidrs",
            "public[0].source_cidrs: '203.0.113.5/24' has host bits set: did you mean 203.0.113.0/24?",
        ),
        (
            "[client_ip]\ntrusted_proxies = [\"10.1.2.3/8\"]\n",
            "trusted_proxies",
            "client_ip.trusted_proxies: '10.1.2.3/8' has host bits set: did you mean 10.0.0.0/8?",
        ),
    ];
    for (extra, at, want) in cases {
        let default = if extra.is_empty() { "stagin" } else { "prod" };
        let (cfg, text, e) = refused_toml(extra, default);
        let line = line_starting(&text, at);
        assert_eq!(e.line_number(), Some(line), "{e}");
        assert!(e.reason.contains(want), "{e}");
        // The real binary prints file:line: key: reason.
        let out = cli(&["check", "--config", cfg.path().to_str().unwrap()]);
        assert_eq!(out.code, 1);
        let want = format!("clawgate.toml:{line}: {want}");
        assert!(out.stdout.contains(&want), "no '{want}' in {}", out.stdout);
    }
}

#[test]
fn keys_of_listen_and_upstreams_name_their_line() {
    let cfg = config_dir();
    let toml = cfg
        .base
        .replace("http://127.0.0.1:18790", "https://127.0.0.1:18790");
    std::fs::write(cfg.path().join("clawgate.toml"), &toml).unwrap();
    let e = refused(cfg.path());
    assert_eq!(
        e.line_number(),
        Some(line_starting(&toml, "url = \"https://")),
        "{e}"
    );
    assert!(e.reason.starts_with("upstreams.staging.url: "), "{e}");
    // An absent key points at its table: tls_key without tls_cert.
    let toml = cfg
        .base
        .replace("[listen]\n", "[listen]\ntls_key = \"k.pem\"\n");
    std::fs::write(cfg.path().join("clawgate.toml"), &toml).unwrap();
    let e = refused(cfg.path());
    assert_eq!(
        e.line_number(),
        Some(line_starting(&toml, "[listen]")),
        "{e}"
    );
    assert!(e.reason.contains("tls_cert and tls_key go together"), "{e}");
}

#[test]
fn a_session_key_file_that_cannot_be_used_names_the_line_that_points_at_it() {
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("short.key"), [7u8; 8]).unwrap();
    for (name, why) in [
        ("missing.key", "cannot read"),
        ("short.key", "at least 32 bytes"),
    ] {
        let file = keys.path().join(name);
        let file = file.to_str().unwrap();
        let (_, text, e) = refused_toml(&format!("[session]\nkey_file = \"{file}\"\n"), "prod");
        assert_eq!(
            e.line_number(),
            Some(line_starting(&text, "key_file")),
            "{e}"
        );
        assert!(e.reason.starts_with("session.key_file: "), "{e}");
        assert!(e.reason.contains(file) && e.reason.contains(why), "{e}");
    }
}
