//! `clawgate member add|remove|list`, run as the real binary against a
//! real `clawgate run` and upstream: what they write (mode, owner, the
//! loader's own checks), what they print (the token once, the gateway
//! change), and what the reloaded proxy then does with the member.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// The real proxy, run as the service user (who owns the config
/// directory), as in production.
fn proxy_as_service(cfg: &ConfigDir) -> Proc {
    chown_tree(cfg.path(), SERVICE);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    cmd.uid(SERVICE).gid(SERVICE);
    Proc::start_with(cfg, cmd)
}

/// The file names in the members directory, sorted.
fn member_files(cfg: &ConfigDir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cfg.path().join("members"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn member_add_as_root_lets_carol_through_a_reloaded_clawgate_to_the_upstream() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE), MemberSpec::new("bob", BOB)],
    );
    let p = proxy_as_service(&cfg);
    eventually_status(p.addr, ALICE, 200, Duration::from_secs(5)).await;
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "member",
        "add",
        "carol",
        "--config",
        &dir,
        "--origins",
        "https://carol.example.com",
        "none",
        "--cidrs",
        "127.0.0.0/8,::1/128",
        "--scopes",
        "operator.read",
        "operator.write",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let token = field(&out.stdout, "token:").to_string();
    assert!(token.starts_with("cg_") && token.len() == 46, "{token}");
    assert_eq!(out.stdout.matches(&token).count(), 1, "printed once");
    assert!(!out.stderr.contains(&token), "{}", out.stderr);
    let digest: [u8; 32] = hex::decode(sha256_hex(&token)).unwrap().try_into().unwrap();
    assert_eq!(
        field(&out.stdout, "token id:"),
        clawgate::member::TokenRecord::id_for(&digest)
    );
    // The gateway change names carol in each of the three keys.
    for want in [
        "gateway.auth.trustedProxy.allowUsers: missing [\"carol\"]",
        "gateway.auth.identityScopes.carol: missing",
        "gateway.controlUi.allowedOrigins: missing [\"https://carol.example.com\"]",
    ] {
        assert!(out.stdout.contains(want), "no {want:?} in:\n{}", out.stdout);
    }

    // Owned like the members directory (the service user's, though root
    // wrote it), 0600, the hash and never the token.
    let file = cfg.member_path("carol");
    assert_eq!(owner_group_mode(&file), (SERVICE, SERVICE, 0o600));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&token), "{text}");
    assert!(text.contains(&sha256_hex(&token)), "{text}");
    assert_eq!(member_files(&cfg), ["alice.env", "bob.env", "carol.env"]);

    p.signal("-HUP");
    p.wait_log("config reloaded", Duration::from_secs(5));
    eventually_status(p.addr, &token, 200, Duration::from_secs(5)).await;
    let r = get(p.addr, "/seen", &[("authorization", &bearer(&token))]).await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["path"], "/seen", "the upstream answered: {seen}");
    assert_eq!(seen["headers"]["x-forwarded-user"][0], "carol");
    assert_eq!(
        seen["headers"]["x-openclaw-scopes"][0],
        "operator.read,operator.write"
    );
    // carol's CIDRs and origins hold: a browser origin not listed is refused.
    let other = get(
        p.addr,
        "/",
        &[
            ("authorization", &bearer(&token)),
            ("origin", "https://alice.example.com"),
        ],
    )
    .await;
    assert_eq!(other.status, 403);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(failing(&r), Vec::<String>::new(), "{r:#}");
    assert_eq!(code, 0);
}

#[tokio::test]
async fn member_remove_closes_bobs_open_websocket_and_his_token_gets_401() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE), MemberSpec::new("bob", BOB)],
    );
    let p = Proc::start(&cfg);
    eventually_status(p.addr, BOB, 200, Duration::from_secs(5)).await;
    let (mut ws, _) = open_ws(p.addr, "/ws", BOB).await;
    ws.send(Message::text("hi")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(echo, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "hi"),
        "{echo:?}"
    );

    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&["member", "remove", "bob", "--config", &dir])).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!cfg.member_path("bob").exists());
    for want in [
        "gateway.auth.trustedProxy.allowUsers: not in clawgate [\"bob\"]",
        "gateway.auth.identityScopes: not clawgate members [\"bob\"]",
        "gateway.controlUi.allowedOrigins: not in clawgate [\"https://bob.example.com\"]",
    ] {
        assert!(out.stdout.contains(want), "no {want:?} in:\n{}", out.stdout);
    }

    p.signal("-HUP");
    p.wait_log("config reloaded", Duration::from_secs(5));
    let frame = close_frame(&mut ws, Duration::from_secs(5))
        .await
        .expect("a close frame on bob's WebSocket");
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    eventually_status(p.addr, BOB, 401, Duration::from_secs(5)).await;
    let alice = get(p.addr, "/", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(alice.status, 200);

    let again = cli(&["member", "remove", "bob", "--config", &dir]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("no member 'bob'"), "{}", again.stderr);
}

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
        clawgate::member::TokenRecord::id_for(&d)
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

    // A file the proxy (the service user) cannot read: its reload is
    // refused and it keeps serving the files as they were, which is said.
    cfg.write_member(&MemberSpec::new("carol", CAROL));
    p.wait_log("config reload refused", Duration::from_secs(5));
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

#[test]
fn member_add_refuses_duplicates_and_bad_input_and_writes_nothing() {
    let cfg = good_dir();
    let dir = cfg.path().to_str().unwrap();
    let alice_before = std::fs::read_to_string(cfg.member_path("alice")).unwrap();
    // (name, origins, cidrs, extra args, what stderr says)
    let cases: &[(&str, &str, &str, &[&str], &str)] = &[
        ("alice", "none", "10.0.0.0/8", &[], "member 'alice' exists"),
        (
            "Carol",
            "none",
            "10.0.0.0/8",
            &[],
            "'Carol' is not a member name",
        ),
        (
            "../carol",
            "none",
            "10.0.0.0/8",
            &[],
            "is not a member name",
        ),
        (
            "carol",
            "none",
            "10.0.0.0/40",
            &[],
            "EGRESS_CIDRS: '10.0.0.0/40' is not a CIDR",
        ),
        (
            "carol",
            "https://c.example.com/",
            "10.0.0.0/8",
            &[],
            "ORIGINS:",
        ),
        (
            "carol",
            "none",
            "10.0.0.0/8",
            &["--upstream", "nope"],
            "no upstream named 'nope'",
        ),
        (
            "carol",
            "none\"\nTOKEN_SHA256=\"x",
            "10.0.0.0/8",
            &[],
            "--origins:",
        ),
        ("carol", "none", "10.0.0.0/8 $HOME", &[], "--cidrs:"),
        (
            "carol",
            "none",
            "10.0.0.0/8",
            &["--scopes", "operator read!"],
            "SCOPES:",
        ),
    ];
    for (name, origins, cidrs, extra, says) in cases {
        let mut args = vec![
            "member",
            "add",
            name,
            "--config",
            dir,
            "--origins",
            origins,
            "--cidrs",
            cidrs,
        ];
        args.extend_from_slice(extra);
        let out = cli(&args);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stdout.contains("token:"), "{args:?}: {}", out.stdout);
        assert_eq!(member_files(&cfg), ["alice.env", "bob.env"], "{args:?}");
    }
    assert_eq!(
        std::fs::read_to_string(cfg.member_path("alice")).unwrap(),
        alice_before
    );
}

#[test]
fn member_add_with_a_certificate_writes_its_fingerprint_and_mints_no_token() {
    let pki = common::tls::Pki::new();
    let cert = pki.client("dave", Vec::new());
    let cfg = good_dir();
    let pem_path = cfg.path().join("dave.pem");
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.cert.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        &pem_path,
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let dir = cfg.path().to_str().unwrap();
    let out = cli(&[
        "member",
        "add",
        "dave",
        "--config",
        dir,
        "--origins",
        "none",
        "--cidrs",
        "10.0.0.0/8",
        "--cert",
        pem_path.to_str().unwrap(),
        "--audit",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("token:"), "{}", out.stdout);
    let text = std::fs::read_to_string(cfg.member_path("dave")).unwrap();
    assert!(
        text.contains(&format!("CERT_SHA256=\"{}\"", cert.sha256_hex())),
        "{text}"
    );
    assert!(!text.contains("TOKEN_SHA256"), "{text}");
    let d = cli(&[
        "explain",
        "--config",
        dir,
        "--cert",
        pem_path.to_str().unwrap(),
        "--format",
        "json",
    ])
    .json();
    assert_eq!(
        (d["member"].as_str(), d["mode"].as_str()),
        (Some("dave"), Some("audit"))
    );
}
