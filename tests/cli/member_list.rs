//! `clawgate member list`, run as the real binary beside a real
//! `clawgate run`: each member as the files have it, and each token's last
//! use as the running proxy counted it.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn member_list_shows_each_member_and_its_tokens_last_use_from_the_proxy() {
    let up = Upstream::start().await;
    let later = SystemTime::now() + Duration::from_secs(30 * 86400);
    let later_text = rfc3339(later);
    let bob2 = "bob-second-token-0123456789";
    let cfg = ConfigDir::new(
        &[("prod", up.url()), ("staging", up.url())],
        &[
            MemberSpec::new("alice", ALICE),
            MemberSpec::new("bob", BOB)
                .set(
                    "TOKEN_SHA256",
                    &format!("{}@{later_text} {}", sha256_hex(BOB), sha256_hex(bob2)),
                )
                .set("ORIGINS", "none")
                .set("EGRESS_CIDRS", "127.0.0.0/8 10.0.0.0/8")
                .set("UPSTREAM", "staging")
                .set("MODE", "audit"),
        ],
    );
    let p = proxy_as_service(&cfg);
    eventually_status(p.addr, ALICE, 200, Duration::from_secs(5)).await;
    let dir = cfg.path().to_str().unwrap().to_string();
    let admin = format!("http://{}", p.admin);
    let id = |t: &str| {
        let d: [u8; 32] = hex::decode(sha256_hex(t)).unwrap().try_into().unwrap();
        clawgate_policy::member::TokenRecord::id_for(&d)
    };

    let out = cli_async(s(&[
        "member", "list", "--config", &dir, "--admin", &admin, "--format", "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let l = out.json();
    assert_eq!(l["last_use"]["available"], true, "{l:#}");
    let alice = &l["members"][0];
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["upstream"], "prod");
    assert_eq!(alice["mode"], "enforce");
    assert_eq!(
        alice["origins"],
        serde_json::json!(["none", "https://alice.example.com"])
    );
    assert_eq!(
        alice["cidrs"],
        serde_json::json!(["127.0.0.0/8", "::1/128"])
    );
    assert_eq!(alice["tokens"][0]["id"], id(ALICE));
    assert_eq!(alice["tokens"][0]["expires"], Value::Null);
    let used = alice["tokens"][0]["last_used"]
        .as_str()
        .expect("alice's token was used");
    let used = humantime::parse_rfc3339(used).unwrap();
    assert!(SystemTime::now().duration_since(used).unwrap() < Duration::from_secs(60));
    let bob = &l["members"][1];
    assert_eq!(bob["name"], "bob");
    assert_eq!(bob["upstream"], "staging");
    assert_eq!(bob["mode"], "audit");
    assert_eq!(
        bob["cidrs"],
        serde_json::json!(["127.0.0.0/8", "10.0.0.0/8"])
    );
    assert_eq!(bob["tokens"][0]["id"], id(BOB));
    assert_eq!(bob["tokens"][0]["expires"], later_text.as_str());
    assert_eq!(bob["tokens"][0]["expired"], false);
    assert_eq!(bob["tokens"][0]["last_used"], Value::Null);
    assert_eq!(bob["tokens"][1]["id"], id(bob2));

    let out = cli_async(s(&["member", "list", "--config", &dir, "--admin", &admin])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = &out.stdout;
    assert!(t.contains("alice  upstream prod  mode enforce"), "{t}");
    assert!(t.contains("bob  upstream staging  mode audit"), "{t}");
    assert!(t.contains("  cidrs    127.0.0.0/8 10.0.0.0/8"), "{t}");
    assert!(
        t.contains(&format!(
            "  token    {}  expires {later_text}  last used not since the proxy started",
            id(BOB)
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "  token    {}  expires never  last used 20",
            id(ALICE)
        )),
        "{t}"
    );

    assert!(!out.stderr.contains("note:"), "{}", out.stderr);

    // A file the proxy (the service user) cannot read: that member is left
    // out of the reload, so the proxy serves other files than these, which
    // is said.
    cfg.write_member(&MemberSpec::new("carol", CAROL));
    p.wait_log("member file refused", Duration::from_secs(5));
    let out = cli_async(s(&["member", "list", "--config", &dir, "--admin", &admin])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("has not loaded these files as they are now"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("carol  upstream prod  mode enforce"),
        "{}",
        out.stdout
    );

    // No proxy answering: the list still comes, last use said unknown.
    drop(p);
    let out = cli_async(s(&["member", "list", "--config", &dir, "--admin", &admin])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("last use not available"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("last used unknown"), "{}", out.stdout);
}
