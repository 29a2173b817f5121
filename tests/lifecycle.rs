//! The process lifecycle with the real binary: SIGHUP and file-change
//! reloads, a bad file keeping the old config, SIGTERM draining in-flight
//! requests, and reloads under load losing nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;

const ALICE: &str = "alice-lifecycle-token-1";
const ALICE_NEW: &str = "alice-lifecycle-token-2";

#[tokio::test]
async fn sighup_reloads_a_rotated_token() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let p = Proc::start(&cfg);
    assert_eq!(
        get(p.addr, "/", &[("authorization", &bearer(ALICE))])
            .await
            .status,
        200
    );
    cfg.write_member(&MemberSpec::new("alice", ALICE_NEW));
    p.signal("-HUP");
    eventually_status(p.addr, ALICE_NEW, 200, Duration::from_secs(5)).await;
    assert_eq!(
        get(p.addr, "/", &[("authorization", &bearer(ALICE))])
            .await
            .status,
        401
    );
    let m = metrics(p.admin).await;
    assert!(
        sample(&m, "clawgate_config_reloads_total{result=\"ok\"}") >= 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_file_change_reloads_without_a_signal() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let p = Proc::start(&cfg);
    cfg.write_member(&MemberSpec::new("bob", ALICE_NEW));
    p.wait_log("config reloaded", Duration::from_secs(5));
    eventually_status(p.addr, ALICE_NEW, 200, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_broken_member_file_blocks_only_that_member_and_says_where() {
    let up = Upstream::start().await;
    let bob = "bob-lifecycle-token";
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE), MemberSpec::new("bob", bob)],
    );
    let p = Proc::start(&cfg);
    // One reload: alice's file breaks, bob rotates, carol is new, and
    // dave is new and broken.
    cfg.write_raw_member(
        "alice",
        "TOKEN_SHA256=abc\nORIGINS=none\nEGRESS_CIDRS=10.0.0.0/8\n",
    );
    cfg.write_member(&MemberSpec::new("bob", "bob-lifecycle-token-2"));
    cfg.write_member(&MemberSpec::new("carol", "carol-lifecycle-token"));
    cfg.write_raw_member("dave", "ORIGINS=none\n");
    p.signal("-HUP");
    let mut refused = [
        p.wait_log("member file refused", Duration::from_secs(5)),
        p.wait_log("member file refused", Duration::from_secs(5)),
    ];
    refused.sort();
    assert!(refused[0].contains("alice.env:1"), "{refused:?}");
    assert!(refused[0].contains("last good file stays"), "{refused:?}");
    assert!(refused[1].contains("dave.env"), "{refused:?}");
    assert!(refused[1].contains("not added"), "{refused:?}");
    eventually_status(p.addr, "carol-lifecycle-token", 200, Duration::from_secs(5)).await;
    for (token, status) in [(ALICE, 200), ("bob-lifecycle-token-2", 200), (bob, 401)] {
        let r = get(p.addr, "/", &[("authorization", &bearer(token))]).await;
        assert_eq!(r.status, status, "{token}");
    }
    let m = metrics(p.admin).await;
    assert!(
        sample(&m, "clawgate_config_reloads_total{result=\"partial\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "clawgate_config_member_files_refused"),
        2.0,
        "{m}"
    );

    // Fixed files clear the count; a broken clawgate.toml still refuses
    // the whole reload and the old config serves.
    cfg.write_member(&MemberSpec::new("alice", ALICE));
    cfg.remove_member("dave");
    p.signal("-HUP");
    sample_reaches(p.admin, "clawgate_config_reloads_total{result=\"ok\"}", 1.0).await;
    assert_eq!(
        sample(
            &metrics(p.admin).await,
            "clawgate_config_member_files_refused"
        ),
        0.0
    );
    cfg.write_base("[bogus]\n");
    p.signal("-HUP");
    let line = p.wait_log("config reload refused", Duration::from_secs(5));
    assert!(line.contains("clawgate.toml"), "{line}");
    assert_eq!(
        get(p.addr, "/", &[("authorization", &bearer(ALICE))])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_and_exits_zero() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let mut p = Proc::start(&cfg);
    let addr = p.addr;
    let slow =
        tokio::spawn(async move { get(addr, "/slow", &[("authorization", &bearer(ALICE))]).await });
    // Wait until the slow request has reached the upstream.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.count() == 0 {
        assert!(
            Instant::now() < deadline,
            "slow request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.signal("-TERM");
    p.wait_log("draining", Duration::from_secs(5));
    let ready = get(p.admin, "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "readyz must go not-ready while draining");
    // The listener closes right after the drain starts.
    let deadline = Instant::now() + Duration::from_secs(3);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting new connections while draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"slow done");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A shutdown closes idle keep-alive connections at once (they have no
/// request to finish) and reports a clean drain, well inside its limit.
#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_without_waiting_out_the_drain() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut sender = keep_alive(server.addr).await;
        let req = member_request("/", ALICE, None);
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        idle.push(sender);
    }
    let started = Instant::now();
    let clean = server.shutdown(Duration::from_secs(20)).await;
    assert!(clean, "the drain must finish, not time out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while idle.iter().any(|s| !s.is_closed()) {
        assert!(
            Instant::now() < deadline,
            "an idle connection was left open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reloads_under_a_steady_stream_lose_no_request() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let addr = server.addr;
    let load = tokio::spawn(async move {
        let auth = bearer(ALICE);
        let mut codes = Vec::new();
        for _ in 0..400 {
            codes.push(get(addr, "/", &[("authorization", &auth)]).await.status);
        }
        codes
    });
    for i in 0..10 {
        let origins = format!("none https://alice{i}.example.com");
        cfg.write_member(&MemberSpec::new("alice", ALICE).set("ORIGINS", &origins));
        server.reload().unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let codes = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(codes.len(), 400);
    assert!(
        codes.iter().all(|c| *c == 200),
        "lost requests: {:?}",
        codes.iter().filter(|c| **c != 200).count()
    );
}

#[tokio::test]
async fn a_keep_alive_connection_sees_the_new_snapshot_after_reload() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut sender = keep_alive(server.addr).await;
    let req = || member_request("/", ALICE, None);
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);
    cfg.write_member(&MemberSpec::new("alice", ALICE_NEW));
    server.reload().unwrap();
    sender.ready().await.unwrap();
    assert_eq!(
        sender.send_request(req()).await.unwrap().status(),
        401,
        "same connection, new snapshot"
    );
}

/// A token refused on a connection is remembered there (no re-hashing a
/// repeated bad token), but only until a reload: once a reload makes it a
/// member's, the same connection is let in with it.
#[tokio::test]
async fn a_token_refused_on_a_connection_is_let_in_after_a_reload_grants_it() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut sender = keep_alive(server.addr).await;
    let req = |token: &str| member_request("/", token, None);
    for _ in 0..2 {
        sender.ready().await.unwrap();
        assert_eq!(
            sender.send_request(req(ALICE_NEW)).await.unwrap().status(),
            401
        );
    }
    sender.ready().await.unwrap();
    assert_eq!(
        sender.send_request(req(ALICE)).await.unwrap().status(),
        200,
        "a good token after a remembered bad one"
    );
    cfg.write_member(&MemberSpec::new("alice", ALICE_NEW));
    server.reload().unwrap();
    sender.ready().await.unwrap();
    assert_eq!(
        sender.send_request(req(ALICE_NEW)).await.unwrap().status(),
        200,
        "same connection, same token, new snapshot"
    );
}

/// The 403 diff is remembered per connection for a repeated refusal, but
/// a different Origin, or the same one after a reload changed the
/// member's allowlist, gets its own.
#[tokio::test]
async fn a_remembered_403_diff_follows_the_origin_and_the_snapshot() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut sender = keep_alive(server.addr).await;
    let mut refused = async |origin: &str| -> serde_json::Value {
        sender.ready().await.unwrap();
        let req = member_request("/", ALICE, Some(origin));
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 403, "{origin}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    };
    let first = refused("https://evil.example.com").await;
    let again = refused("https://evil.example.com").await;
    assert_eq!(first["origin"], again["origin"]);
    assert_ne!(first["request_id"], again["request_id"]);
    let other = refused("https://alice.example.org").await;
    assert_eq!(other["origin"]["presented"], "https://alice.example.org");
    assert_eq!(again["origin"]["presented"], "https://evil.example.com");

    cfg.write_member(&MemberSpec::new("alice", ALICE).set("ORIGINS", "https://evil.example.net"));
    server.reload().unwrap();
    let after = refused("https://evil.example.com").await;
    assert_eq!(
        after["origin"]["allowed"],
        serde_json::json!(["https://evil.example.net"]),
        "the new allowlist, not the remembered diff"
    );
    assert_eq!(after["origin"]["nearest"], "https://evil.example.net");

    // Once a reload allows it, the remembered refusal is not replayed.
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("ORIGINS", "https://evil.example.com"));
    server.reload().unwrap();
    sender.ready().await.unwrap();
    let req = member_request("/", ALICE, Some("https://evil.example.com"));
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "the same connection, now allowed");
}

#[tokio::test]
async fn a_reload_names_the_members_it_changed_and_the_settings_that_wait_for_a_restart() {
    let up = Upstream::start().await;
    let bob = MemberSpec::new("bob", "bob-lifecycle-token");
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE), bob.clone()],
    );
    let p = Proc::start(&cfg);
    cfg.remove_member("bob");
    cfg.write_member(&MemberSpec::new("carol", "carol-lifecycle-token"));
    cfg.write_member(
        &MemberSpec::new("alice", ALICE_NEW).set("ORIGINS", "none https://alice.example.org"),
    );
    p.signal("-HUP");
    let line = p.wait_log("members changed by reload", Duration::from_secs(5));
    assert!(line.contains("added=carol"), "{line}");
    assert!(line.contains("removed=bob"), "{line}");
    assert!(
        line.contains("changed=alice(TOKEN_SHA256,ORIGINS)"),
        "{line}"
    );
    // Kinds, never values: no hash of any token reaches the log.
    for t in [ALICE, ALICE_NEW, "carol-lifecycle-token"] {
        assert!(!line.contains(&sha256_hex(t)[..12]), "{line}");
    }

    // The access-log path is read once at start: a reload says so, and
    // the running log keeps being written.
    let toml = cfg.path().join("clawgate.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("access.log", "elsewhere.log")).unwrap();
    p.signal("-HUP");
    let warn = p.wait_log("applies at the next restart", Duration::from_secs(5));
    assert!(warn.contains("log.access"), "{warn}");
    assert!(!warn.contains("listen.addr"), "{warn}");
    let r = get(p.addr, "/", &[("authorization", &bearer(ALICE_NEW))]).await;
    assert_eq!(r.status, 200);
    cfg.log_line(r.request_id()).await;
    assert!(!cfg.path().join("elsewhere.log").exists());
}
