//! `clawgate check` on fixture config dirs: a good one (ports and
//! members listed), and one for each kind of failing row (key
//! compartments, exposure, observability, conflicts, the backup set, a
//! TOML error), each with its evidence; and the markdown ticket page.

use super::*;

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
fn public_admin_listener_is_a_load_error_unless_allowed() {
    let cfg = good_dir();
    let toml = base_toml("127.0.0.1:18443", "0.0.0.0:19180", "access.log", GATEWAY);
    write_toml(&cfg, &toml);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let line = toml
        .lines()
        .position(|l| l.contains("0.0.0.0:19180"))
        .unwrap()
        + 1;
    assert_eq!(r["load_error"]["line"], line, "{r:#}");
    let fix = "bind [admin] addr to 127.0.0.1, or set allow_public = true";
    let loads = row(&r, "configuration loads");
    assert_eq!(loads["status"], "fail");
    assert!(loads["evidence"].as_str().unwrap().contains(fix), "{r:#}");
    // The admin row reads the file itself, so it names the cause too.
    let admin = row(&r, "admin listener on loopback");
    assert_eq!(admin["status"], "fail");
    let evidence = admin["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("0.0.0.0:19180") && evidence.contains(fix),
        "{evidence}"
    );

    let allowed = toml.replace("[admin]\n", "[admin]\nallow_public = true\n");
    write_toml(&cfg, &allowed);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(row(&r, "admin listener on loopback")["status"], "pass");
    assert!(r["ports"][1]["conflicts"][0]
        .as_str()
        .unwrap()
        .contains("allow_public = true"));
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

#[test]
fn check_fails_a_member_file_the_service_user_cannot_read() {
    const READABLE: &str = "member files readable by the service user";
    let cfg = good_dir();
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 0, "{r:#}");
    assert!(row(&r, READABLE)["evidence"]
        .as_str()
        .unwrap()
        .contains("owner of clawgate.toml"));
    // The service user (uid 65534) owns clawgate.toml; alice.env stays
    // root:root 0600, as a `token rotate` run as root used to leave it.
    let toml = cfg.path().join("clawgate.toml");
    std::os::unix::fs::chown(&toml, Some(65534), Some(65534))
        .expect("chown (these tests run as root)");
    std::os::unix::fs::chown(cfg.path(), Some(65534), Some(65534)).unwrap();
    let members = cfg.path().join("members");
    std::os::unix::fs::chown(&members, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(cfg.member_path("bob"), Some(65534), Some(65534)).unwrap();
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(failing(&r), vec![READABLE], "{r:#}");
    let ev = row(&r, READABLE)["evidence"].as_str().unwrap().to_string();
    let alice = cfg.member_path("alice");
    assert!(
        ev.contains(&format!("chown nobody {}", alice.display())),
        "{ev}"
    );
    assert!(ev.contains("members/alice.env is not readable"), "{ev}");
    assert!(!ev.contains("bob.env"), "{ev}");

    // Told the proxy runs as root, the same files pass; as an unknown
    // name, the row says so.
    let (code, r) = check_json(cfg.path(), &["--user", "root"]);
    assert_eq!((code, failing(&r)), (0, Vec::<String>::new()), "{r:#}");
    let (code, r) = check_json(cfg.path(), &["--user", "no-such-user-x"]);
    assert_eq!(code, 1);
    assert!(row(&r, READABLE)["evidence"]
        .as_str()
        .unwrap()
        .contains("no such user"));

    // The fix the row names makes it pass.
    std::os::unix::fs::chown(&alice, Some(65534), None).unwrap();
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!((code, failing(&r)), (0, Vec::<String>::new()), "{r:#}");

    // A members directory the service user cannot enter fails too.
    std::os::unix::fs::chown(&members, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(
        &members,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert!(row(&r, READABLE)["evidence"]
        .as_str()
        .unwrap()
        .contains("members is not listable"));
}
