//! The log writers off the request path, with the real binary: denial
//! lines on stderr with the access log off, a flood of long lines each
//! arriving once and whole, and writers that end when quiet, so a steady
//! process is one thread.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;

const ALICE: &str = "alice-log-writers-token-1";

/// clawgate with alice routed to `up` and the access log off.
fn start_with_access_log_off(up: &Upstream) -> (ConfigDir, Proc) {
    let mut cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.base = cfg
        .base
        .replace("access = \"access.log\"", "access = \"off\"");
    cfg.write_base("");
    let p = Proc::start(&cfg);
    (cfg, p)
}

/// A policy-denial line on stderr: a refusal in full, or the folded line
/// after it that names its repeats (`log_writer::fold`).
#[derive(Debug)]
enum Denial {
    Full { id: String },
    Folded { same_as: String, ids: Vec<String> },
}

/// The quoted value of `key=` in `line`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(&format!(" {key}=\"")).nth(1)?.split('"').next()
}

impl Denial {
    fn of(line: &str) -> Option<Denial> {
        if !line.contains("  INFO policy denial ") {
            return None;
        }
        Some(match field(line, "same_as") {
            Some(first) => Denial::Folded {
                same_as: first.to_string(),
                ids: field(line, "request_ids")?
                    .split(' ')
                    .map(str::to_string)
                    .collect(),
            },
            None => Denial::Full {
                id: field(line, "request_id")?.to_string(),
            },
        })
    }
}

/// Denial lines from `p`'s stderr until every ID in `ids` was named,
/// checking on the way that each is named once and that a folded line
/// follows the full line it names.
fn denial_lines_naming(p: &Proc, ids: &[String], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let (mut seen, mut full, mut lines) = (HashSet::new(), HashSet::new(), Vec::new());
    while !ids.iter().all(|id| seen.contains(id)) {
        let line = p
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("not every denial logged within {within:?}"));
        let Some(denial) = Denial::of(&line) else {
            continue;
        };
        let named = match denial {
            Denial::Full { id } => {
                full.insert(id.clone());
                vec![id]
            }
            Denial::Folded { same_as, ids } => {
                assert!(
                    full.contains(&same_as),
                    "folded after its full line: {line}"
                );
                ids
            }
        };
        for id in named {
            assert!(ids.contains(&id), "an ID this test was given: {id}");
            assert!(seen.insert(id), "each ID once: {line}");
        }
        lines.push(line);
    }
    lines
}

/// With the access log off, every 403 that has a diff is still logged on
/// stderr (batched off the request path), repeats on one connection
/// included, and the token never appears in it. Repeats that reach the
/// writer together are folded into one line after the first.
#[tokio::test]
async fn policy_denials_are_logged_with_the_access_log_off() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let (cfg, p) = start_with_access_log_off(&up);
    let mut sender = keep_alive(p.addr).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        sender.ready().await.unwrap();
        let req = member_request(
            "/v1/chat?token=secret-in-query",
            ALICE,
            Some("https://evil.example.com"),
        );
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_string());
    }
    assert!(!cfg.path().join("access.log").exists());
    let lines = denial_lines_naming(&p, &ids, Duration::from_secs(5));
    assert!(lines[0].contains(&format!("request_id=\"{}\"", ids[0])));
    for line in &lines {
        assert!(line.contains("member=\"alice\""), "{line}");
        assert!(line.contains("path=\"/v1/chat\""), "{line}");
        assert!(line.contains("reason=\"origin_not_allowed\""), "{line}");
        if let Some(Denial::Full { .. }) = Denial::of(line) {
            assert!(
                line.contains("\"presented\":\"https://evil.example.com\""),
                "{line}"
            );
        }
        assert!(
            !line.contains(ALICE) && !line.contains("secret-in-query"),
            "{line}"
        );
    }
}

/// A flood of refusals with long lines: the writer folds the repeats and
/// hands stderr its batches in pieces, and every request ID still arrives
/// once, in a whole line, none cut or run into another.
#[tokio::test]
async fn a_flood_of_denials_reaches_stderr_as_whole_lines_each_once() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let (_cfg, p) = start_with_access_log_off(&up);
    let mut sender = keep_alive(p.addr).await;
    // ≈1.2 KiB per full line, 400 refusals: over the writer's 16 KiB
    // pieces even folded.
    let path = format!("/v1/{}", "p".repeat(1000));
    let mut ids = Vec::new();
    for _ in 0..400 {
        sender.ready().await.unwrap();
        let req = member_request(&path, ALICE, Some("https://evil.example.com"));
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_string());
    }
    let lines = denial_lines_naming(&p, &ids, Duration::from_secs(10));
    assert!(lines.len() < ids.len(), "repeats in one batch were folded");
    for line in &lines {
        let whole = match Denial::of(line) {
            Some(Denial::Full { .. }) => line.ends_with("}}"),
            _ => line.ends_with('"'),
        };
        assert!(
            line.starts_with("20") && whole,
            "a whole line: {}…",
            &line[..line.len().min(120)]
        );
        assert_eq!(line.matches("policy denial").count(), 1, "one line each");
        assert!(line.contains(&format!("path=\"{path}\"")));
    }
}

/// On one CPU a steady clawgate is one thread, as an nginx or HAProxy
/// worker is: timers are the runtime's own, the config poll's blocking
/// thread ends soon after each poll, and the log writers (the access
/// log's; with it off, the denial log's) run only while they have lines.
/// A second thread makes
/// the kernel count a reference on the file of each of the proxy's
/// system calls. Lines still arrive after a writer ended and another
/// started.
#[tokio::test]
async fn a_steady_process_on_one_cpu_is_one_thread() {
    let up = Upstream::start().await;
    for access_log in [true, false] {
        let mut cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
        if !access_log {
            cfg.base = cfg
                .base
                .replace("access = \"access.log\"", "access = \"off\"");
            cfg.write_base("");
        }
        let p = Proc::start_pinned(&cfg);
        let token = bearer(ALICE);
        let evil = [
            ("authorization", token.as_str()),
            ("origin", "https://evil.example.com"),
        ];
        for round in 0..2 {
            let ok = get(p.addr, "/", &[("authorization", &token)]).await;
            assert_eq!(ok.status, 200, "round {round}");
            let denied = get(p.addr, "/", &evil).await;
            assert_eq!(denied.status, 403, "round {round}");
            let id = denied.headers["x-request-id"].to_str().unwrap().to_string();
            if access_log {
                wait_for_line(&cfg.path().join("access.log"), &id, Duration::from_secs(5));
            } else {
                p.wait_log(&id, Duration::from_secs(5));
            }
            // A writer's quiet spell is 1 s; the watcher's polls go on
            // meanwhile.
            p.wait_one_thread(Duration::from_secs(10));
        }
    }
}

/// Wait (bounded) until the file at `path` has a line containing `needle`.
fn wait_for_line(path: &std::path::Path, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
