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

/// `/readyz` of the admin listener at `admin`: status and the config it
/// names (`config_dir`, `config_fingerprint`).
async fn readyz(admin: std::net::SocketAddr) -> (u16, String, String) {
    let r = get(admin, "/readyz", &[]).await;
    let body = String::from_utf8(r.body.to_vec()).unwrap();
    let line = |k: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k} in /readyz: {body:?}"))
            .to_string()
    };
    (r.status, line("config_dir"), line("config_fingerprint"))
}

#[tokio::test]
async fn oncall_reports_another_instance_answering_at_its_admin_address() {
    // B runs; A (not running) has B's admin address in its config, as
    // when two configs on a shared host name the same port.
    let (_up, _b_cfg, b) = live(&[MemberSpec::new("bob", BOB)], "").await;
    let denied = get(
        b.addr,
        "/",
        &[
            ("authorization", &bearer(BOB)),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(denied.status, 403);
    let a_up = Upstream::start().await;
    let mut a = ConfigDir::new(&[("prod", a_up.url())], &[MemberSpec::new("alice", ALICE)]);
    a.base = a.base.replace(
        "[admin]\naddr = \"127.0.0.1:0\"",
        &format!("[admin]\naddr = \"{}\"", b.admin_addr),
    );
    a.write_base("");
    let a_fp = clawgate::config::load(a.path()).unwrap().fingerprint;
    let (_, _, b_fp) = readyz(b.admin_addr).await;
    assert_ne!(a_fp, b_fp);

    let dir = a.path().to_str().unwrap().to_string();
    let out = cli_async(s(&["oncall", "--config", &dir, "--format", "json"])).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["check"]["pass"], true, "A's own config is fine");
    assert_eq!(v["admin"]["reachable"], true);
    assert_eq!(v["admin"]["serves_this_config"], false);
    assert_eq!(v["admin"]["config_fingerprint"], b_fp.as_str());
    assert_eq!(v["admin"]["expected_fingerprint"], a_fp.as_str());
    let err = v["admin"]["error"].as_str().unwrap();
    assert!(err.contains("serves a different config"), "{err}");
    assert!(err.contains(&b_fp) && err.contains(&a_fp), "{err}");
    assert_eq!(
        v["denials"],
        serde_json::json!([]),
        "B's denials are not A's"
    );

    let text = cli_async(s(&["oncall", "--config", &dir])).await;
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("NEEDS ATTENTION"), "{}", text.stdout);
    assert!(text.stdout.contains("ANOTHER CONFIG"), "{}", text.stdout);
    assert!(!text.stdout.contains("HEALTHY"), "{}", text.stdout);
}

#[tokio::test]
async fn oncall_tells_a_stale_instance_and_a_reload_changes_the_fingerprint() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let ok = get(server.addr, "/", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(ok.status, 200);
    let (status, dir_named, fp1) = readyz(server.admin_addr).await;
    assert_eq!(status, 200, "the status code is kept");
    assert_eq!(
        std::path::Path::new(&dir_named),
        cfg.path().canonicalize().unwrap()
    );
    let admin = format!("http://{}", server.admin_addr);
    let dir = cfg.path().to_str().unwrap().to_string();
    let oncall = || {
        cli_async(s(&[
            "oncall", "--config", &dir, "--admin", &admin, "--format", "json",
        ]))
    };
    let out = oncall().await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["admin"]["serves_this_config"], true);

    // Edited on disk, not yet reloaded: the instance serves the old files.
    cfg.write_member(&MemberSpec::new("alice", ALICE).set("ORIGINS", "https://new.example"));
    let out = oncall().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["admin"]["serves_this_config"], false);
    assert_eq!(v["admin"]["config_fingerprint"], fp1.as_str());
    assert!(v["admin"]["error"]
        .as_str()
        .unwrap()
        .contains("has not loaded these files"));

    server.reload().unwrap();
    let (status, _, fp2) = readyz(server.admin_addr).await;
    assert_eq!(status, 200);
    assert_ne!(fp1, fp2, "a reload changes the fingerprint");
    let out = oncall().await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["admin"]["config_fingerprint"], fp2.as_str());
}

#[tokio::test]
async fn oncall_with_a_config_that_does_not_load_says_so_first_and_guesses_no_address() {
    let (_up, _other_cfg, other) = live(&[MemberSpec::new("bob", BOB)], "").await;
    let cfg = good_dir();
    write_toml(&cfg, "[listen\naddr = 1\n");
    let dir = cfg.path().to_str().unwrap().to_string();

    let out = cli_async(s(&["oncall", "--config", &dir, "--format", "json"])).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.starts_with("clawgate: THE CONFIGURATION IN")
            && out.stderr.contains("DID NOT LOAD"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--admin"), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["healthy"], false);
    assert!(v["config_error"]
        .as_str()
        .unwrap()
        .contains("clawgate.toml"));
    assert_eq!(v["admin"]["url"], Value::Null, "no default address tried");
    assert_eq!(v["admin"]["reachable"], false);
    assert!(v["admin"]["error"]
        .as_str()
        .unwrap()
        .contains("not contacted"));
    let text = cli_async(s(&["oncall", "--config", &dir])).await;
    let second = text.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        second.starts_with("!! THE CONFIGURATION"),
        "{}",
        text.stdout
    );

    // --admin given: it is asked, and said to be unverifiable.
    let admin = format!("http://{}", other.admin_addr);
    let out = cli_async(s(&[
        "oncall", "--config", &dir, "--admin", &admin, "--format", "json",
    ]))
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("DID NOT LOAD"), "{}", out.stderr);
    assert!(
        out.stderr.contains("carrying on with --admin"),
        "{}",
        out.stderr
    );
    let v = out.json();
    assert_eq!(v["admin"]["reachable"], true);
    assert_eq!(v["admin"]["serves_this_config"], Value::Null);
}

#[tokio::test]
async fn oncall_says_what_a_restart_would_change() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let ok = get(server.addr, "/", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(ok.status, 200);
    let admin = format!("http://{}", server.admin_addr);
    let dir = cfg.path().to_str().unwrap().to_string();
    let oncall = |format: &str| {
        cli_async(s(&[
            "oncall", "--config", &dir, "--admin", &admin, "--format", format,
        ]))
    };
    assert_eq!(
        oncall("json").await.json()["admin"]["restart_pending"],
        serde_json::json!([])
    );

    let toml = cfg.path().join("clawgate.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("access.log", "moved.log")).unwrap();
    server.reload().unwrap();
    let body =
        String::from_utf8(get(server.admin_addr, "/readyz", &[]).await.body.to_vec()).unwrap();
    assert!(body.contains("restart_pending: log.access"), "{body}");
    let out = oncall("json").await;
    assert_eq!(out.json()["admin"]["serves_this_config"], true);
    assert_eq!(
        out.json()["admin"]["restart_pending"],
        serde_json::json!(["log.access"])
    );
    let out = oncall("text").await;
    assert!(
        out.stdout.contains("RESTART PENDING: log.access"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn oncall_shows_each_members_channel() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let past = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let old = "alice-old-token-0123456789";
    let alice = MemberSpec::new("alice", ALICE).set(
        "TOKEN_SHA256",
        &format!("{} {}@{past}", sha256_hex(ALICE), sha256_hex(old)),
    );
    let (_up, cfg, server) = live(&[alice, MemberSpec::new("bob", BOB)], "").await;
    let ok = get(server.addr, "/", &[("authorization", &bearer(ALICE))]).await;
    assert_eq!(ok.status, 200);
    let refused = get(
        server.addr,
        "/",
        &[
            ("authorization", &bearer(BOB)),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403);
    let mut req = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-clawgate-token", ALICE.parse().unwrap());
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (_ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    sample_reaches(
        server.admin_addr,
        "clawgate_websockets_open{member=\"alice\"}",
        1.0,
    )
    .await;

    let admin = format!("http://{}", server.admin_addr);
    let dir = cfg.path().to_str().unwrap().to_string();
    let out = cli_async(s(&[
        "oncall", "--config", &dir, "--admin", &admin, "--format", "json",
    ]))
    .await;
    let v = out.json();
    let ch = |name: &str| find(&v, "channels", "member", name).clone();
    let (a, b) = (ch("alice"), ch("bob"));
    assert!(a["last_allowed"].is_string(), "{a:#}");
    assert!(a["last_denial"].is_null(), "{a:#}");
    assert_eq!(a["websockets_open"], 1);
    let tokens = a["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    let used = tokens.iter().find(|t| t["expired"] == false).unwrap();
    let expired = tokens.iter().find(|t| t["expired"] == true).unwrap();
    assert!(used["last_used"].is_string(), "{a:#}");
    assert!(expired["last_used"].is_null(), "{a:#}");
    assert!(expired["expires"].is_string());
    assert!(b["last_allowed"].is_null(), "{b:#}");
    assert_eq!(b["last_denial"]["reason"], "origin_not_allowed");

    let text = cli_async(s(&["oncall", "--config", &dir, "--admin", &admin])).await;
    assert!(text.stdout.contains("== CHANNELS"), "{}", text.stdout);
    assert!(
        text.stdout.contains("origin_not_allowed"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("(EXPIRED)"), "{}", text.stdout);
}
