//! `clawgate gateway-config`: the block for OpenClaw's config that matches
//! the members, `check` failing when the gateway's config drifts from it,
//! and `--help` on every command.

use super::*;

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

/// `config/` copied to a temp dir with its member files at 0600 (git does
/// not keep modes), so the shipped files are checked as shipped.
pub(crate) fn shipped_config() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dst = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("clawgate.toml"), dst.path().join("clawgate.toml")).unwrap();
    std::fs::create_dir(dst.path().join("members")).unwrap();
    for e in std::fs::read_dir(src.join("members")).unwrap() {
        let e = e.unwrap();
        let to = dst.path().join("members").join(e.file_name());
        std::fs::copy(e.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    dst
}

#[test]
fn the_shipped_gateway_block_passes_check_against_the_shipped_config() {
    let cfg = shipped_config();
    let gw = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/openclaw-gateway.json5");
    let (code, r) = check_json(
        cfg.path(),
        &[
            "--gateway-config",
            gw.to_str().unwrap(),
            "--upstream",
            "prod",
        ],
    );
    assert_eq!(failing(&r), Vec::<String>::new(), "{r:#}");
    assert_eq!(code, 0);
    for check in [
        "gateway trusts clawgate in trusted-proxy mode",
        "gateway allowlists match members",
    ] {
        assert_eq!(row(&r, check)["status"], "pass", "{check}");
    }
}
