//! Observability without leaks: no secret ever reaches the access log,
//! /metrics or /suggest, and the exposition passes `promtool check metrics`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

const ALICE: &str = "alice-secret-token-9f8e7d6c";
const GUESS: &str = "guessed-secret-token-1a2b3c";
const QUERY_SECRET: &str = "legacy-query-secret-5e6f";

#[tokio::test]
async fn secrets_never_appear_in_logs_metrics_or_suggestions() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    std::fs::write(cfg.path().join("session.key"), [9u8; 32]).unwrap();
    cfg.write_base("[session]\nkey_file = \"session.key\"\n");
    let server = start(&cfg).await;
    let a = server.addr;
    let bearer = format!("Bearer {ALICE}");
    let wrong = format!("Bearer {GUESS}");
    let q = format!("/api?token={QUERY_SECRET}");
    let mut rids = Vec::new();
    rids.push(
        get(a, &q, &[("authorization", &bearer)])
            .await
            .request_id()
            .to_string(),
    );
    rids.push(
        get(a, &q, &[("authorization", &wrong)])
            .await
            .request_id()
            .to_string(),
    );
    rids.push(
        get(
            a,
            "/",
            &[
                ("x-clawgate-token", ALICE),
                ("origin", "https://evil.example"),
            ],
        )
        .await
        .request_id()
        .to_string(),
    );
    rids.push(
        get(a, "/", &[("x-clawgate-token", GUESS)])
            .await
            .request_id()
            .to_string(),
    );
    let login = request(
        a,
        "POST",
        "/_clawgate/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={ALICE}"),
    )
    .await;
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie_value = cookie.split_once('=').unwrap().1.to_string();
    rids.push(
        get(a, &q, &[("cookie", &cookie)])
            .await
            .request_id()
            .to_string(),
    );
    rids.push(login.request_id().to_string());
    for rid in &rids {
        cfg.log_line(rid).await;
    }
    let log = std::fs::read_to_string(cfg.path().join("access.log")).unwrap();
    let metrics = metrics(server.admin_addr).await;
    let suggest =
        String::from_utf8(get(server.admin_addr, "/suggest", &[]).await.body.to_vec()).unwrap();
    for secret in [ALICE, GUESS, QUERY_SECRET, cookie_value.as_str()] {
        assert!(!log.contains(secret), "secret in the access log");
        assert!(!metrics.contains(secret), "secret in /metrics");
        assert!(!suggest.contains(secret), "secret in /suggest");
    }
    assert!(
        log.contains("\"path\":\"/api\""),
        "path logged without its query string"
    );
    assert!(metrics
        .contains("clawgate_token_last_used_timestamp_seconds{member=\"alice\",token_id=\"tok_"));
}

#[tokio::test]
async fn metrics_exposition_passes_promtool() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let bearer = format!("Bearer {ALICE}");
    get(server.addr, "/", &[("authorization", &bearer)]).await;
    get(server.addr, "/", &[("authorization", "Bearer nope")]).await;
    get(
        server.addr,
        "/",
        &[("authorization", &bearer), ("origin", "https://x.example")],
    )
    .await;
    let text = metrics(server.admin_addr).await;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by tests/run.sh (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
