//! `clawgate oncall` against a live clawgate: upstreams, denials and the
//! log tail, and carrying on when the admin listener is unreachable.

use super::*;

#[tokio::test]
async fn oncall_reports_upstreams_denials_and_the_log_tail() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let auth = format!("Bearer {ALICE}");
    let ok = get(server.addr, "/", &[("authorization", &auth)]).await;
    assert_eq!(ok.status, 200);
    let denied = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("origin", "https://evil.example.net"),
        ],
    )
    .await;
    assert_eq!(denied.status, 403);
    cfg.log_line(denied.request_id()).await;
    let admin = format!("http://{}", server.admin_addr);
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "oncall", "--config", &dir, "--admin", &admin, "--lines", "5", "--format", "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["check"]["pass"], true);
    assert_eq!(v["upstreams"][0]["name"], "prod");
    assert_eq!(v["upstreams"][0]["reachable"], true);
    assert!(v["upstreams"][0]["connect_ms"].as_f64().is_some());
    assert_eq!(v["admin"]["reachable"], true);
    let denials = v["denials"].as_array().unwrap();
    assert!(
        denials.iter().any(|d| d["member"] == "alice"
            && d["reason"] == "origin_not_allowed"
            && d["count"] == 1),
        "{denials:?}"
    );
    assert_eq!(v["access_log"]["destination"], "file");
    let lines = v["access_log"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 5);
    assert!(lines
        .iter()
        .any(|l| l.as_str().unwrap().contains(denied.request_id())));

    let text = cli_async(s(&["oncall", "--config", &dir, "--admin", &admin])).await;
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("== DENIALS"));
    assert!(text.stdout.contains("origin_not_allowed"));
    assert!(!text.stdout.contains(ALICE));
}

#[tokio::test]
async fn oncall_says_when_the_admin_listener_is_unreachable_and_carries_on() {
    let (_up, cfg, _server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let admin = format!("http://{}", closed_port());
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "oncall", "--config", &dir, "--admin", &admin, "--format", "json",
    ]))
    .await;
    assert_eq!(out.code, 1);
    let v = out.json();
    assert_eq!(v["admin"]["reachable"], false);
    assert!(v["admin"]["error"].as_str().unwrap().contains("--admin"));
    assert_eq!(v["upstreams"][0]["reachable"], true);
    assert_eq!(v["check"]["pass"], true);
    let text = cli_async(s(&["oncall", "--config", &dir, "--admin", &admin])).await;
    assert!(text.stdout.contains("UNREACHABLE"), "{}", text.stdout);
    assert!(text.stdout.contains("== ACCESS LOG"));
}
