//! `clawgate member add|remove|list`, run as the real binary against a
//! real `clawgate run` and upstream: what they write (mode, owner, the
//! loader's own checks), what they print (the token once, the gateway
//! change), and what the reloaded proxy then does with the member.

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::*;

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
        clawgate_policy::member::TokenRecord::id_for(&digest)
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
