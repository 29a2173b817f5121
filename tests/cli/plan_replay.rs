//! `clawgate plan --access-log`: a log written by a live clawgate,
//! replayed against a narrowed config (exit 1, the members and request
//! IDs named) and a widened one (exit 0); and `--from git:REV`.

use super::plan::{copy_config, copy_config_to};
use super::*;

fn write_member(dir: &Path, m: &MemberSpec) {
    let p = dir.join("members").join(format!("{}.env", m.name));
    std::fs::write(&p, m.render()).unwrap();
}

fn flow<'a>(v: &'a Value, member: &str, flow: &str) -> &'a Value {
    &v["replay"]["members"][member][flow]
}

/// A live clawgate's access log: alice from an allowed origin, alice
/// from a refused one, bob, carol (request IDs in that order), plus an
/// unparsable line and a websocket line.
struct Logged {
    _up: Upstream,
    _server: clawgate::runtime::server::Server,
    cfg: ConfigDir,
    ids: [String; 4],
    alice: MemberSpec,
    carol: MemberSpec,
}

async fn logged() -> Logged {
    let alice = MemberSpec::new("alice", ALICE)
        .set("ORIGINS", "https://old.example.com https://app.example.com");
    let carol = MemberSpec::new("carol", CAROL);
    let bob = MemberSpec::new("bob", BOB);
    let (up, cfg, server) = live(&[alice.clone(), bob, carol.clone()], "").await;
    let cases = [
        (ALICE, Some("https://old.example.com"), 200),
        (ALICE, Some("https://new.example.com"), 403),
        (BOB, None, 200),
        (CAROL, None, 200),
    ];
    let mut ids = Vec::new();
    for (token, origin, status) in cases {
        let auth = bearer(token);
        let mut h = vec![("authorization", auth.as_str())];
        h.extend(origin.map(|o| ("origin", o)));
        let r = get(server.addr, "/", &h).await;
        assert_eq!(r.status, status, "{token} {origin:?}");
        cfg.log_line(r.request_id()).await;
        ids.push(r.request_id().to_string());
    }
    let log = cfg.path().join("access.log");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("not json\n{\"kind\":\"websocket\",\"request_id\":\"w\"}\n");
    std::fs::write(&log, text).unwrap();
    Logged {
        _up: up,
        _server: server,
        cfg,
        ids: ids.try_into().unwrap(),
        alice,
        carol,
    }
}

async fn plan_replay(old: &Path, new: &Path, log: &str, format: &str) -> Out {
    cli_async(s(&[
        "plan",
        "--from",
        old.to_str().unwrap(),
        "--config",
        new.to_str().unwrap(),
        "--access-log",
        log,
        "--format",
        format,
    ]))
    .await
}

#[tokio::test]
async fn replay_names_whom_a_narrowing_breaks_and_exits_1() {
    let l = logged().await;
    let [old_origin, new_origin, bob_ok, carol_ok] = &l.ids;
    // New: alice loses old.example.com and gains new.example.com, bob is
    // removed, carol may only come from 10.0.0.0/8.
    let new = copy_config(l.cfg.path());
    let alice2 = l.alice.clone();
    write_member(
        new.path(),
        &alice2.set("ORIGINS", "https://app.example.com https://new.example.com"),
    );
    std::fs::remove_file(new.path().join("members/bob.env")).unwrap();
    write_member(
        new.path(),
        &l.carol.clone().set("EGRESS_CIDRS", "10.0.0.0/8"),
    );
    let log = l.cfg.path().join("access.log");
    let log = log.to_str().unwrap();
    let out = plan_replay(l.cfg.path(), new.path(), log, "json").await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["replay"]["judged"], 4, "{v:#}");
    assert_eq!(v["replay"]["unparsable"], 1);
    assert_eq!(v["replay"]["other_kinds"], 1);
    assert_eq!(v["lost_requests"], 3);
    let risk = flow(&v, "alice", "allowed_to_at_risk");
    assert_eq!(risk["count"], 1);
    assert_eq!(risk["examples"][0], old_origin.as_str());
    let lifted = flow(&v, "alice", "denied_to_allowed");
    assert_eq!(lifted["reasons"]["origin_not_allowed"], 1);
    assert_eq!(lifted["examples"][0], new_origin.as_str());
    let bob = flow(&v, "bob", "allowed_to_denied");
    assert_eq!(bob["reasons"]["member_removed"], 1);
    assert_eq!(bob["examples"][0], bob_ok.as_str());
    let carol = flow(&v, "carol", "allowed_to_denied");
    assert_eq!(carol["reasons"]["cidr_not_allowed"], 1);
    assert_eq!(carol["examples"][0], carol_ok.as_str());
    let text = plan_replay(l.cfg.path(), new.path(), log, "text").await;
    assert_eq!(text.code, 1);
    let line = format!("bob: 1 allowed -> denied (member_removed: 1), e.g. {bob_ok}");
    assert!(text.stdout.contains(&line), "{}", text.stdout);
    assert!(
        text.stdout.contains("RESULT: 3 request(s)"),
        "{}",
        text.stdout
    );
    let md = plan_replay(l.cfg.path(), new.path(), log, "md").await;
    let row = format!("| carol | allowed → denied | 1 | cidr_not_allowed: 1 | {carol_ok} |");
    assert!(md.stdout.contains(&row), "{}", md.stdout);
}

#[tokio::test]
async fn replay_of_a_widening_loses_nothing_and_exits_0() {
    let l = logged().await;
    let wide = copy_config(l.cfg.path());
    let origins = "https://old.example.com https://app.example.com https://new.example.com";
    write_member(wide.path(), &l.alice.clone().set("ORIGINS", origins));
    let log = l.cfg.path().join("access.log");
    let out = plan_replay(l.cfg.path(), wide.path(), log.to_str().unwrap(), "json").await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["lost_requests"], 0);
    let lifted = flow(&v, "alice", "denied_to_allowed");
    assert_eq!(lifted["count"], 1);
    assert_eq!(lifted["examples"][0], l.ids[1].as_str());
    assert_eq!(
        v["replay"]["members"].as_object().unwrap().len(),
        1,
        "{v:#}"
    );
    // An access log that cannot be read is an error, not an empty replay.
    let out = plan_replay(l.cfg.path(), wide.path(), "/nonexistent.log", "json").await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/nonexistent.log"), "{}", out.stderr);
}

fn git(dir: &Path, args: &[&str]) {
    let st = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// The `clawgate plan` temporary directories now in the temp dir.
fn plan_temp_dirs() -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("clawgate-plan-"))
        .collect();
    v.sort();
    v
}

#[test]
fn plan_from_git_reads_the_config_dir_at_that_revision() {
    let repo = tempfile::tempdir().unwrap();
    let src = super::gateway_config::shipped_config();
    let cfg = repo.path().join("deploy/config");
    copy_config_to(src.path(), &cfg);
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "shipped"]);
    std::fs::remove_file(cfg.join("members/bob.env")).unwrap();
    git(repo.path(), &["commit", "-qam", "remove bob"]);
    let c = cfg.to_str().unwrap();
    let before = plan_temp_dirs();
    let out = cli(&[
        "plan",
        "--from",
        "git:HEAD~",
        "--config",
        c,
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["members"][0]["member"], "bob");
    assert_eq!(v["members"][0]["change"], "removed");
    assert_eq!(v["members"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(
        v["rollback"]["commands"][0],
        format!("git -C {c} checkout HEAD~ -- .")
    );
    // Its temporary copy is gone afterwards.
    assert_eq!(plan_temp_dirs(), before);
    let out = cli(&["plan", "--from", "git:nosuchrev", "--config", c]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no such revision"), "{}", out.stderr);
    let plain = super::gateway_config::shipped_config();
    let p = plain.path().to_str().unwrap();
    let out = cli(&["plan", "--from", "git:HEAD", "--config", p]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("is not in a git work tree"),
        "{}",
        out.stderr
    );
}

/// One access-log line as clawgate writes it (fields it always has).
fn line(id: &str, member: &str, cred: Option<&str>, ip: &str, path: &str, status: u16) -> String {
    let mut v = serde_json::json!({
        "ts": "2026-12-08T00:00:00.000Z", "kind": "http", "request_id": id,
        "member": member, "client_ip": ip, "ip_source": "socket", "method": "GET",
        "path": path, "status": status, "decision": if status < 400 { "allow" } else { "deny" },
        "duration_ms": 1.0,
    });
    if let Some(c) = cred {
        v["credential"] = c.into();
    }
    v.to_string()
}

#[tokio::test]
async fn replay_judges_public_routes_token_expiry_and_audit_mode() {
    let old = super::gateway_config::shipped_config();
    let alice = old.path().join("members/alice.env");
    let text = std::fs::read_to_string(&alice).unwrap();
    let sha = "c6640b1653fb41ce9676cd4018b3cb7bf4dd7b63ff08a036a1e45b3f86ed169e";
    std::fs::write(
        &alice,
        text.replace(sha, &format!("{sha}@2020-01-01T00:00:00Z")),
    )
    .unwrap();
    let new = super::gateway_config::shipped_config();
    let toml = new.path().join("clawgate.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let narrowed = text.replace("\"127.0.0.1/32\", \"192.0.2.0/24\"", "\"127.0.0.1/32\"");
    assert_ne!(narrowed, text);
    std::fs::write(&toml, narrowed).unwrap();
    let bob = new.path().join("members/bob.env");
    let text = std::fs::read_to_string(&bob).unwrap();
    std::fs::write(&bob, format!("{text}MODE=audit\n")).unwrap();
    let mut evil: Value = serde_json::from_str(&line(
        "r-evil",
        "bob",
        Some("tok_9c5cc94442d9"),
        "127.0.0.1",
        "/",
        403,
    ))
    .unwrap();
    evil["diff"] = serde_json::json!({
        "origin": {"presented": "https://evil.example.net", "allowed": ["none"], "nearest": null, "hint": ""},
        "client_ip": {"presented": "127.0.0.1", "allowed": []}
    });
    let log = [
        line("r-hook", "-", None, "192.0.2.7", "/hooks/x", 200),
        line("r-hook-local", "-", None, "127.0.0.1", "/hooks/x", 200),
        line(
            "r-expired",
            "alice",
            Some("tok_c6640b1653fb"),
            "127.0.0.1",
            "/",
            401,
        ),
        evil.to_string(),
        line("r-none", "-", None, "127.0.0.1", "/", 401),
        line("r-early", "-", None, "-", "/", 503),
    ]
    .join("\n");
    let log_path = old.path().join("access.log");
    std::fs::write(&log_path, log).unwrap();
    let out = plan_replay(old.path(), new.path(), log_path.to_str().unwrap(), "json").await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["replay"]["judged"], 5);
    assert_eq!(v["replay"]["no_client_ip"], 1);
    let hook = flow(&v, "-", "allowed_to_denied");
    assert_eq!(
        (hook["count"].clone(), hook["examples"][0].clone()),
        (1.into(), "r-hook".into())
    );
    assert_eq!(hook["reasons"]["cidr_not_allowed"], 1);
    let alice = flow(&v, "alice", "denied_to_allowed");
    assert_eq!(alice["reasons"]["token_expired"], 1, "{v:#}");
    let bob = flow(&v, "bob", "denied_to_allowed");
    assert_eq!(bob["reasons"]["origin_not_allowed"], 1, "{v:#}");
    assert_eq!(v["lost_requests"], 1);
    let setting = &v["settings"][0];
    assert_eq!(setting["setting"], "public[0].source_cidrs");
    assert_eq!(setting["applies"], "reload");
}
