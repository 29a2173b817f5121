//! `clawgate token new` and `token rotate`, run as the real binary: what
//! they print, what they write, and that the tokens they make are the ones
//! a proxy admits. Rotation is run as root on a file owned by another user
//! (uid 65534) while the proxy runs as that user, as in production.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn token_new_prints_a_token_whose_line_admits_it_and_nothing_else() {
    let out = cli_async(s(&["token", "new", "alice", "--expires", "90d"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = field(&out.stdout, "token:").to_string();
    assert!(token.starts_with("cg_") && token.len() == 46, "{token}");
    assert!(token[3..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let digest: [u8; 32] = hex::decode(sha256_hex(&token)).unwrap().try_into().unwrap();
    assert_eq!(
        field(&out.stdout, "token id:"),
        clawgate_policy::member::TokenRecord::id_for(&digest)
    );
    let line = field(&out.stdout, "TOKEN_SHA256=");
    let (hash, expiry) = line.split_once('@').expect("an expiry after --expires");
    assert_eq!(hash, sha256_hex(&token), "the line holds the token's hash");
    let expiry = humantime::parse_rfc3339(expiry).unwrap();
    let want = SystemTime::now() + Duration::from_secs(90 * 86400);
    let off = want.duration_since(expiry).unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_secs(60),
        "expiry {line} is not in 90 days"
    );
    assert!(
        out.stdout.matches(&token).count() == 1,
        "the token is printed once:\n{}",
        out.stdout
    );

    let other = cli_async(s(&["token", "new", "bob"])).await;
    let other_token = field(&other.stdout, "token:").to_string();
    assert_ne!(other_token, token, "every token is fresh");
    assert!(!field(&other.stdout, "TOKEN_SHA256=").contains('@'));

    // The printed line, pasted into a member file, admits that token only.
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[]);
    cfg.write_raw_member(
        "alice",
        &format!("TOKEN_SHA256={line}\nORIGINS=none\nEGRESS_CIDRS=127.0.0.0/8\n"),
    );
    let server = start(&cfg).await;
    let ok = get(server.addr, "/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(up.count(), 1);
    let no = get(
        server.addr,
        "/",
        &[("authorization", &bearer(&other_token))],
    )
    .await;
    assert_eq!(no.status, 401);
}

#[tokio::test]
async fn token_rotate_as_root_keeps_the_service_users_file_and_both_tokens_work() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[
            MemberSpec::new("alice", ALICE).set("SCOPES", "operator.read operator.write"),
            MemberSpec::new("bob", BOB),
        ],
    );
    // Production layout: the service user owns the config directory and
    // runs the proxy; the operator runs `token rotate` as root.
    let p = proxy_as_service(&cfg);
    let file = cfg.member_path("alice");
    assert_eq!(owner_group_mode(&file), (SERVICE, SERVICE, 0o600));
    eventually_status(p.addr, ALICE, 200, Duration::from_secs(5)).await;
    let before = std::fs::read_to_string(&file).unwrap();

    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "token",
        "rotate",
        "alice",
        "--config",
        &dir,
        "--overlap",
        "1h",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("new token added"), "{}", out.stdout);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let token = field(&out.stdout, "token:").to_string();

    // Owner, group and mode are the service user's, as before.
    assert_eq!(owner_group_mode(&file), (SERVICE, SERVICE, 0o600));
    let after = std::fs::read_to_string(&file).unwrap();
    let tokens = after
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN_SHA256=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no TOKEN_SHA256 line in:\n{after}"));
    let entries: Vec<&str> = tokens.split(' ').collect();
    assert_eq!(entries.len(), 2, "{after}");
    let (old, until) = entries[0].split_once('@').expect("the old token expires");
    assert_eq!(old, sha256_hex(ALICE));
    let until = humantime::parse_rfc3339(until).unwrap();
    let left = until.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
    assert_eq!(
        entries[1],
        sha256_hex(&token),
        "the new token never expires"
    );
    for l in before.lines().filter(|l| !l.starts_with("TOKEN_SHA256=")) {
        assert!(after.lines().any(|a| a == l), "lost {l:?}:\n{after}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(cfg.path().join("members"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "alice.env" && n != "bob.env")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // The proxy (running as the service user) takes it: a reload that
    // could not read the file would be refused and the new token get 401.
    p.signal("-HUP");
    p.wait_log("config reloaded", Duration::from_secs(5));
    eventually_status(p.addr, &token, 200, Duration::from_secs(5)).await;
    let old = get(p.addr, "/", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(old.status, 200, "the old token works within its overlap");
    let bob = get(p.addr, "/", &[("authorization", &bearer(BOB))]).await;
    assert_eq!(bob.status, 200);

    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(failing(&r), Vec::<String>::new(), "{r:#}");
    assert_eq!(code, 0);
}

#[test]
fn token_rotate_of_an_unknown_member_fails_and_writes_nothing() {
    let cfg = good_dir();
    let dir = cfg.path().to_str().unwrap();
    let before = std::fs::read_to_string(cfg.member_path("alice")).unwrap();
    let out = cli(&["token", "rotate", "carol", "--config", dir]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no member 'carol'"), "{}", out.stderr);
    assert!(!out.stdout.contains("token:"), "{}", out.stdout);
    assert_eq!(
        std::fs::read_to_string(cfg.member_path("alice")).unwrap(),
        before
    );
}

#[test]
fn token_rotate_warns_when_the_service_user_cannot_read_the_file() {
    // clawgate.toml is the service user's; alice.env is root's (as an
    // earlier root-run rotate left it): kept as it is, and said.
    let cfg = good_dir();
    std::os::unix::fs::chown(
        cfg.path().join("clawgate.toml"),
        Some(SERVICE),
        Some(SERVICE),
    )
    .expect("chown (these tests run as root)");
    let file = cfg.member_path("alice");
    let before = owner_group_mode(&file);
    let dir = cfg.path().to_str().unwrap();
    let out = cli(&["token", "rotate", "alice", "--config", dir]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(owner_group_mode(&file), before);
    assert!(
        out.stderr.contains("warning")
            && out.stderr.contains("not readable by nobody")
            && out
                .stderr
                .contains(&format!("chown nobody {}", file.display())),
        "{}",
        out.stderr
    );
}

/// The token ID `member list` shows for `token`.
fn id_of(token: &str) -> String {
    let d: [u8; 32] = hex::decode(sha256_hex(token)).unwrap().try_into().unwrap();
    clawgate_policy::member::TokenRecord::id_for(&d)
}

#[tokio::test]
async fn token_revoke_refuses_that_token_after_reload_and_keeps_the_other() {
    let up = Upstream::start().await;
    let second = "alice-second-token-0123456789";
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[
            MemberSpec::new("alice", ALICE).set(
                "TOKEN_SHA256",
                &format!("{} {}", sha256_hex(ALICE), sha256_hex(second)),
            ),
            MemberSpec::new("bob", BOB),
        ],
    );
    // A mode other than the default, to see it kept.
    let file = cfg.member_path("alice");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let p = Proc::start(&cfg);
    eventually_status(p.addr, ALICE, 200, Duration::from_secs(5)).await;
    eventually_status(p.addr, second, 200, Duration::from_secs(5)).await;
    let dir = cfg.path().to_str().unwrap().to_string();
    let before = owner_group_mode(&file);

    let out = cli_async(s(&[
        "token",
        "revoke",
        "alice",
        &id_of(ALICE),
        "--config",
        &dir,
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("{} revoked", id_of(ALICE))),
        "{}",
        out.stdout
    );
    assert_eq!(owner_group_mode(&file), before);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&sha256_hex(ALICE)), "{text}");
    assert!(text.contains(&sha256_hex(second)), "{text}");

    p.signal("-HUP");
    p.wait_log("config reloaded", Duration::from_secs(5));
    eventually_status(p.addr, ALICE, 401, Duration::from_secs(5)).await;
    let still = get(p.addr, "/", &[("authorization", &bearer(second))]).await;
    assert_eq!(still.status, 200);

    // An unknown ID, and bob's only credential: refused, nothing written.
    let unknown = cli_async(s(&[
        "token",
        "revoke",
        "alice",
        &id_of(ALICE),
        "--config",
        &dir,
    ]))
    .await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("alice has no token"),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains(&id_of(second)),
        "{}",
        unknown.stderr
    );
    let bob_before = std::fs::read_to_string(cfg.member_path("bob")).unwrap();
    let last = cli_async(s(&[
        "token",
        "revoke",
        "bob",
        &id_of(BOB),
        "--config",
        &dir,
    ]))
    .await;
    assert_eq!(last.code, 1);
    assert!(last.stderr.contains("only credential"), "{}", last.stderr);
    assert_eq!(
        std::fs::read_to_string(cfg.member_path("bob")).unwrap(),
        bob_before
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn token_prune_drops_an_expired_hash_and_keeps_a_live_one() {
    let past = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let future = rfc3339(SystemTime::now() + Duration::from_secs(86400));
    let old = "alice-old-token-0123456789";
    let live = "alice-live-token-0123456789";
    let cfg = ConfigDir::new(
        &[("prod", GATEWAY.to_string())],
        &[
            MemberSpec::new("alice", ALICE).set(
                "TOKEN_SHA256",
                &format!(
                    "{}@{past} {}@{future} {}",
                    sha256_hex(old),
                    sha256_hex(live),
                    sha256_hex(ALICE)
                ),
            ),
            // Every token expired: kept, or the file would not load.
            MemberSpec::new("bob", BOB).set("TOKEN_SHA256", &format!("{}@{past}", sha256_hex(BOB))),
        ],
    );
    let dir = cfg.path().to_str().unwrap();
    let bob_before = std::fs::read_to_string(cfg.member_path("bob")).unwrap();
    let out = cli(&["token", "prune", "--config", dir]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("dropped expired {}", id_of(old))),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("every token of bob has expired"),
        "{}",
        out.stderr
    );
    let text = std::fs::read_to_string(cfg.member_path("alice")).unwrap();
    assert!(
        text.contains(&format!(
            "TOKEN_SHA256=\"{}@{future} {}\"",
            sha256_hex(live),
            sha256_hex(ALICE)
        )),
        "{text}"
    );
    assert!(!text.contains(&sha256_hex(old)), "{text}");
    assert_eq!(
        std::fs::read_to_string(cfg.member_path("bob")).unwrap(),
        bob_before
    );
    let (code, _) = check_json(cfg.path(), &[]);
    assert_ne!(code, 2, "the config still loads");

    // The live token still identifies alice, and says when it expires.
    let d = cli(&[
        "explain", "--config", dir, "--token", live, "--format", "json",
    ])
    .json();
    assert_eq!(d["member"], "alice");
    assert_eq!(d["token"]["expires"], future.as_str());

    let again = cli(&["token", "prune", "alice", "--config", dir]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("no expired token"),
        "{}",
        again.stdout
    );
}
