//! `clawgate explain` agreeing with the live proxy on a table of cases.

use super::*;

#[tokio::test]
async fn explain_and_the_live_proxy_agree() {
    let past = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let expired = "alice-old-token-0123456789";
    let alice = MemberSpec::new("alice", ALICE)
        .set(
            "TOKEN_SHA256",
            &format!("{} {}@{past}", sha256_hex(ALICE), sha256_hex(expired)),
        )
        .set("EGRESS_CIDRS", "127.0.0.0/8 10.0.0.0/8");
    let bob = MemberSpec::new("bob", BOB).set("ORIGINS", "https://bob.example.com");
    let carol = MemberSpec::new("carol", CAROL).set("MODE", "audit");
    let (_up, cfg, server) = live(
        &[alice, bob, carol],
        "[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.1/32\"]\n",
    )
    .await;
    let dir = cfg.path().to_str().unwrap().to_string();
    // token | Origin | client ip | path  →  status | reason ("-": none)
    let cases = "
        alice | -                         | 127.0.0.1 | /        | 200 | -
        alice | https://alice.example.com | 10.1.2.3  | /        | 200 | -
        alice | http://alice.example.com  | 127.0.0.1 | /        | 403 | origin_not_allowed
        alice | -                         | 192.0.2.7 | /        | 403 | cidr_not_allowed
        bob   | -                         | 127.0.0.1 | /        | 403 | origin_missing
        bob   | https://bob.example.com   | 127.0.0.1 | /        | 200 | -
        bogus | -                         | 127.0.0.1 | /        | 401 | bad_token
        -     | -                         | 127.0.0.1 | /        | 401 | no_credentials
        old   | -                         | 127.0.0.1 | /        | 401 | token_expired
        carol | https://evil.example.net  | 127.0.0.1 | /        | 200 | origin_not_allowed
        -     | -                         | 127.0.0.1 | /hooks/x | 200 | -
        -     | -                         | 192.0.2.7 | /hooks/x | 403 | cidr_not_allowed
    ";
    let opt = |v: &str| (v != "-").then(|| v.to_string());
    for line in cases.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let token = match f[0] {
            "alice" => Some(ALICE),
            "bob" => Some(BOB),
            "carol" => Some(CAROL),
            "old" => Some(expired),
            "bogus" => Some("not-a-token"),
            _ => None,
        };
        let (origin, ip, path) = (opt(f[1]), f[2], f[3]);
        let status: u16 = f[4].parse().unwrap();
        let reason = opt(f[5]);
        let mut args = s(&[
            "explain", "--config", &dir, "--ip", ip, "--path", path, "--format", "json",
        ]);
        if let Some(t) = token {
            args.extend(s(&["--token", t]));
        }
        if let Some(o) = &origin {
            args.extend(s(&["--origin", o]));
        }
        let offline = cli_async(args).await.json();

        let mut headers: Vec<(&str, String)> = vec![("x-forwarded-for", ip.to_string())];
        if let Some(t) = token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        if let Some(o) = &origin {
            headers.push(("origin", o.clone()));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(server.addr, path, &h).await;
        let live_reason = if r.status >= 400 {
            r.json()["reason"].as_str().map(str::to_string)
        } else {
            cfg.log_line(r.request_id()).await["reason"]
                .as_str()
                .map(str::to_string)
        };
        assert_eq!(r.status, status, "live status for {line}");
        assert_eq!(
            offline["status"], status,
            "explain status for {line}: {offline:#}"
        );
        assert_eq!(live_reason, reason, "live reason for {line}");
        assert_eq!(
            offline["reason"].as_str(),
            reason.as_deref(),
            "explain reason for {line}"
        );
    }
}

#[test]
fn a_broken_member_file_leaves_explain_working_for_the_others() {
    let cfg = ConfigDir::new(
        &[("prod", "http://127.0.0.1:9".into())],
        &[MemberSpec::new("alice", ALICE)],
    );
    cfg.write_raw_member("bob", "ORIGINS=none\nEGRESS_CIDRS=127.0.0.0/8\nBOGUS=1\n");
    let dir = cfg.path().to_str().unwrap();
    let out = cli(&[
        "explain",
        "--config",
        dir,
        "--token",
        ALICE,
        "--ip",
        "127.0.0.1",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("bob.env:3"), "{}", out.stderr);
    // `check` still fails on the broken file.
    let check = cli(&["check", "--config", dir]);
    assert_ne!(check.code, 0, "{}", check.stdout);
}

#[test]
fn explain_says_when_the_presented_token_expires() {
    let later = rfc3339(SystemTime::now() + Duration::from_secs(7 * 86400));
    let past = rfc3339(SystemTime::now() - Duration::from_secs(60));
    let old = "alice-old-token-0123456789";
    let cfg = ConfigDir::new(
        &[("prod", GATEWAY.to_string())],
        &[
            MemberSpec::new("alice", ALICE).set(
                "TOKEN_SHA256",
                &format!("{}@{later} {}@{past}", sha256_hex(ALICE), sha256_hex(old)),
            ),
            MemberSpec::new("bob", BOB),
        ],
    );
    let dir = cfg.path().to_str().unwrap();
    let run = |token: &str, format: &str| {
        cli(&[
            "explain", "--config", dir, "--token", token, "--format", format,
        ])
    };
    let text = run(ALICE, "text");
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(&format!(" expires {later}")),
        "{}",
        text.stdout
    );
    let j = run(ALICE, "json").json();
    assert_eq!(j["token"]["expires"], later.as_str());
    assert_eq!(j["token"]["expired"], false);
    let never = run(BOB, "json").json();
    assert_eq!(never["token"]["expires"], Value::Null);
    assert!(run(BOB, "text").stdout.contains("never expires"));
    let gone = run(old, "json").json();
    assert_eq!(gone["reason"], "token_expired");
    assert_eq!(gone["token"]["expires"], past.as_str());
    assert_eq!(gone["token"]["expired"], true);
    assert!(run(old, "text").stdout.contains(&format!("expired {past}")));
}
