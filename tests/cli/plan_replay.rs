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

#[tokio::test]
async fn replay_names_whom_a_narrowing_breaks_and_exits_1() {
    let alice = MemberSpec::new("alice", ALICE)
        .set("ORIGINS", "https://old.example.com https://app.example.com");
    let bob = MemberSpec::new("bob", BOB);
    let carol = MemberSpec::new("carol", CAROL);
    let (_up, cfg, server) = live(&[alice.clone(), bob, carol.clone()], "").await;
    let (a, b, c) = (bearer(ALICE), bearer(BOB), bearer(CAROL));
    let send = |auth: String, origin: Option<&'static str>| {
        let addr = server.addr;
        async move {
            let mut h = vec![("authorization", auth.as_str())];
            if let Some(o) = origin {
                h.push(("origin", o));
            }
            get(addr, "/", &h).await
        }
    };
    let old_origin = send(a.clone(), Some("https://old.example.com")).await;
    assert_eq!(old_origin.status, 200);
    let new_origin = send(a.clone(), Some("https://new.example.com")).await;
    assert_eq!(new_origin.status, 403);
    let bob_ok = send(b, None).await;
    assert_eq!(bob_ok.status, 200);
    let carol_ok = send(c, None).await;
    assert_eq!(carol_ok.status, 200);
    for r in [&old_origin, &new_origin, &bob_ok, &carol_ok] {
        cfg.log_line(r.request_id()).await;
    }
    let log = cfg.path().join("access.log");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("not json\n{\"kind\":\"websocket\",\"request_id\":\"w\"}\n");
    std::fs::write(&log, text).unwrap();

    // New: alice loses old.example.com and gains new.example.com, bob is
    // removed, carol may only come from 10.0.0.0/8.
    let new = copy_config(cfg.path());
    let alice2 = alice.set("ORIGINS", "https://app.example.com https://new.example.com");
    write_member(new.path(), &alice2);
    std::fs::remove_file(new.path().join("members/bob.env")).unwrap();
    write_member(new.path(), &carol.set("EGRESS_CIDRS", "10.0.0.0/8"));
    let (o, n, l) = (
        cfg.path().to_str().unwrap().to_string(),
        new.path().to_str().unwrap().to_string(),
        log.to_str().unwrap().to_string(),
    );
    let args = |f: &str| {
        s(&[
            "plan",
            "--from",
            &o,
            "--config",
            &n,
            "--access-log",
            &l,
            "--format",
            f,
        ])
    };
    let out = cli_async(args("json")).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["replay"]["judged"], 4, "{v:#}");
    assert_eq!(v["replay"]["unparsable"], 1);
    assert_eq!(v["replay"]["other_kinds"], 1);
    assert_eq!(v["lost_requests"], 3);
    let risk = flow(&v, "alice", "allowed_to_at_risk");
    assert_eq!(risk["count"], 1);
    assert_eq!(risk["examples"][0], old_origin.request_id());
    let lifted = flow(&v, "alice", "denied_to_allowed");
    assert_eq!(lifted["reasons"]["origin_not_allowed"], 1);
    assert_eq!(lifted["examples"][0], new_origin.request_id());
    let bob = flow(&v, "bob", "allowed_to_denied");
    assert_eq!(bob["reasons"]["member_removed"], 1);
    assert_eq!(bob["examples"][0], bob_ok.request_id());
    let carol = flow(&v, "carol", "allowed_to_denied");
    assert_eq!(carol["reasons"]["cidr_not_allowed"], 1);
    assert_eq!(carol["examples"][0], carol_ok.request_id());
    let text = cli_async(args("text")).await;
    assert_eq!(text.code, 1);
    let line = format!(
        "bob: 1 allowed -> denied (member_removed: 1), e.g. {}",
        bob_ok.request_id()
    );
    assert!(text.stdout.contains(&line), "{}", text.stdout);
    assert!(
        text.stdout.contains("RESULT: 3 request(s)"),
        "{}",
        text.stdout
    );
    let md = cli_async(args("md")).await;
    assert!(
        md.stdout.contains(&format!(
            "| carol | allowed → denied | 1 | cidr_not_allowed: 1 | {} |",
            carol_ok.request_id()
        )),
        "{}",
        md.stdout
    );

    // Widening only (alice gains an origin): nothing lost, exit 0.
    let wide = copy_config(cfg.path());
    write_member(
        wide.path(),
        &alice2.set(
            "ORIGINS",
            "https://old.example.com https://app.example.com https://new.example.com",
        ),
    );
    let w = wide.path().to_str().unwrap();
    let out = cli_async(s(&[
        "plan",
        "--from",
        &o,
        "--config",
        w,
        "--access-log",
        &l,
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["lost_requests"], 0);
    assert_eq!(flow(&v, "alice", "denied_to_allowed")["count"], 1);
    // An access log that cannot be read is an error.
    let out = cli_async(s(&[
        "plan",
        "--from",
        &o,
        "--config",
        w,
        "--access-log",
        "/nonexistent.log",
    ]))
    .await;
    assert_eq!(out.code, 2);
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
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("clawgate-plan-")
        })
        .count();
    assert_eq!(leftovers, 0);
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
