//! The process lifecycle with the real binary: SIGHUP and file-change
//! reloads, a bad file keeping the old config, SIGTERM draining in-flight
//! requests, and reloads under load losing nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const ALICE: &str = "alice-lifecycle-token-1";
const ALICE_NEW: &str = "alice-lifecycle-token-2";

/// The real `clawgate run`, its addresses parsed from its startup line.
struct Proc {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Proc {
    fn start(cfg: &ConfigDir) -> Proc {
        Proc::start_with(cfg, Command::new(env!("CARGO_BIN_EXE_clawgate")))
    }

    /// Pinned to one CPU (`taskset`, which execs it: same PID), as the
    /// benchmarks and a one-core deployment run it.
    fn start_pinned(cfg: &ConfigDir) -> Proc {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        let first = cpus.trim().split([',', '-']).next().unwrap().to_string();
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &first, env!("CARGO_BIN_EXE_clawgate")]);
        Proc::start_with(cfg, cmd)
    }

    // The child is killed and waited for in `Drop`.
    #[allow(clippy::zombie_processes)]
    fn start_with(cfg: &ConfigDir, mut cmd: Command) -> Proc {
        let mut child = cmd
            .args(["run", "--config"])
            .arg(cfg.path())
            .env("CLAWGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("clawgate printed its listening line");
            if line.contains("clawgate listening") {
                let field = |name: &str| -> SocketAddr {
                    let rest = &line[line.find(&format!("{name}=")).unwrap() + name.len() + 1..];
                    rest.split_whitespace().next().unwrap().parse().unwrap()
                };
                return Proc {
                    addr: field("addr"),
                    admin: field("admin_addr"),
                    child,
                    stderr: rx,
                };
            }
        }
    }

    /// How many threads the process has now.
    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .count()
    }

    /// Wait (bounded) until the process is down to one thread.
    fn wait_one_thread(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.threads() != 1 {
            assert!(
                Instant::now() < deadline,
                "still {} threads after {within:?}",
                self.threads()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Wait (bounded) for a stderr line containing `needle`.
    fn wait_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no log line containing {needle:?} within {within:?}");
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A keep-alive request to `path` with `token` and, if given, an Origin.
fn member_request(
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    let mut b = http::Request::builder()
        .uri(path)
        .header("host", "gw.test")
        .header("authorization", bearer(token));
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(http_body_util::Empty::new()).unwrap()
}

/// Poll until `token` gets `status`, bounded.
async fn eventually_status(addr: SocketAddr, token: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = get(addr, "/", &[("authorization", &bearer(token))])
            .await
            .status;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "token still gets {got}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
async fn a_broken_member_file_keeps_the_old_config_and_says_where() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let p = Proc::start(&cfg);
    cfg.write_raw_member(
        "alice",
        "TOKEN_SHA256=abc\nORIGINS=none\nEGRESS_CIDRS=10.0.0.0/8\n",
    );
    p.signal("-HUP");
    let line = p.wait_log("config reload refused", Duration::from_secs(5));
    assert!(line.contains("alice.env:1"), "{line}");
    assert_eq!(
        get(p.addr, "/", &[("authorization", &bearer(ALICE))])
            .await
            .status,
        200
    );
    let m = metrics(p.admin).await;
    assert!(
        sample(&m, "clawgate_config_reloads_total{result=\"error\"}") >= 1.0,
        "{m}"
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

/// With the access log off, every 403 that has a diff is still logged on
/// stderr (batched off the request path), one line per refusal, repeats on
/// one connection included, and the token never appears in it.
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
    for id in &ids {
        let line = p.wait_log(id, Duration::from_secs(5));
        assert!(line.contains("INFO policy denial"), "{line}");
        assert!(line.contains("member=\"alice\""), "{line}");
        assert!(line.contains("path=\"/v1/chat\""), "{line}");
        assert!(line.contains("reason=\"origin_not_allowed\""), "{line}");
        assert!(
            line.contains("\"presented\":\"https://evil.example.com\""),
            "{line}"
        );
        assert!(
            !line.contains(ALICE) && !line.contains("secret-in-query"),
            "{line}"
        );
    }
}

/// A flood of refusals with long lines: the writer hands stderr its
/// batches in pieces (`deny_log`), and every line still arrives once and
/// whole, none cut or run into another.
#[tokio::test]
async fn a_flood_of_denials_reaches_stderr_as_whole_lines_each_once() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let (_cfg, p) = start_with_access_log_off(&up);
    let mut sender = keep_alive(p.addr).await;
    // ≈1.2 KiB per line, 400 lines: well over the writer's 16 KiB pieces.
    let path = format!("/v1/{}", "p".repeat(1000));
    let mut ids = std::collections::HashSet::new();
    let mut last = String::new();
    for _ in 0..400 {
        sender.ready().await.unwrap();
        let req = member_request(&path, ALICE, Some("https://evil.example.com"));
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        last = body["request_id"].as_str().unwrap().to_string();
        assert!(ids.insert(last.clone()));
    }
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&last) {
        let line = p
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("every denial line within 10 s");
        if !line.contains("policy denial") {
            continue;
        }
        assert!(
            line.starts_with("20") && line.ends_with("}}"),
            "a whole line: {}…",
            &line[..line.len().min(120)]
        );
        assert_eq!(line.matches("policy denial").count(), 1, "one line each");
        assert!(line.contains(&format!("path=\"{path}\"")));
        let id = line
            .split("request_id=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        assert!(ids.contains(&id), "an ID this test was given: {id}");
        assert!(seen.insert(id), "each line once");
    }
    assert_eq!(seen, ids, "every refusal logged");
}

/// On one CPU a steady clawgate is one thread, as an nginx or HAProxy
/// worker is: the timer ticks on the runtime, a small directory's poll
/// runs there, and the log writers (the access log's; with it off, the
/// denial log's) run only while they have lines. A second thread makes
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
            // A writer's quiet spell is 1 s; the watcher's polls and the
            // timer's ticks go on meanwhile.
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
