//! `clawgate suggest` against a live clawgate: the env-file change it
//! proposes, with counts, including what audit mode let through.

use super::*;

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

    let md = cli_async(s(&[
        "suggest", "--admin", &admin, "--member", "carol", "--format", "md",
    ]))
    .await;
    assert!(
        md.stdout.starts_with("## clawgate suggest\n\n```\n"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("10.9.8.7/32 (2 requests)"),
        "{}",
        md.stdout
    );

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

#[tokio::test]
async fn suggest_with_a_config_that_does_not_load_says_so_and_exits_non_zero() {
    let (_up, _cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let cfg = good_dir();
    write_toml(&cfg, "[listen\n");
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&["suggest", "--config", &dir])).await;
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.starts_with("clawgate: THE CONFIGURATION IN")
            && out.stderr.contains("DID NOT LOAD")
            && out.stderr.contains("--admin"),
        "{}",
        out.stderr
    );
    // With --admin the config is not needed.
    let admin = format!("http://{}", server.admin_addr);
    let out = cli_async(s(&["suggest", "--config", &dir, "--admin", &admin])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("nothing to suggest"), "{}", out.stdout);
}
