//! Members reach their upstream with identity injected and credentials
//! stripped; the upstream sees exactly what DESIGN.md promises.

mod common;

use common::*;

const ALICE: &str = "alice-token-0123456789";

async fn setup() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE).set("SCOPES", "operator.read operator.write")],
    );
    let server = start(&cfg).await;
    (up, cfg, server)
}

#[tokio::test]
async fn member_request_reaches_upstream_with_identity_and_scopes() {
    let (_up, _cfg, server) = setup().await;
    let auth = format!("Bearer {ALICE}");
    let r = get(server.addr, "/api/x?y=1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = r.json();
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-user"][0], "alice");
    assert_eq!(h["x-openclaw-scopes"][0], "operator.read,operator.write");
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-request-id"][0], r.request_id());
    assert!(
        h.get("authorization").is_none(),
        "credential leaked upstream"
    );
    assert_eq!(seen["path"], "/api/x?y=1");
}

#[tokio::test]
async fn wrong_origin_gets_403_with_origins_diff_in_body_and_log() {
    let (up, cfg, server) = setup().await;
    let auth = format!("Bearer {ALICE}");
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("origin", "http://alice.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let b = r.json();
    assert_eq!(b["reason"], "origin_not_allowed");
    assert_eq!(b["member"], "alice");
    assert_eq!(b["request_id"], r.request_id());
    assert_eq!(b["origin"]["presented"], "http://alice.example.com");
    assert_eq!(b["origin"]["nearest"], "https://alice.example.com");
    assert!(b["origin"]["hint"]
        .as_str()
        .unwrap()
        .contains("scheme differs"));
    assert_eq!(b["client_ip"]["presented"], "127.0.0.1");
    assert_eq!(
        up.count(),
        0,
        "a denied request must not reach the upstream"
    );
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["diff"]["origin"], b["origin"]);
    assert_eq!(line["reason"], "origin_not_allowed");
}

#[tokio::test]
async fn missing_credentials_get_401_without_member_details() {
    let (up, _cfg, server) = setup().await;
    let r = get(server.addr, "/", &[]).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let b = r.json();
    assert_eq!(b["reason"], "no_credentials");
    assert!(b.get("member").is_none());
    let r = get(server.addr, "/", &[("x-clawgate-token", "nope")]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "bad_token");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn x_clawgate_token_identifies_a_member_like_bearer() {
    let (up, _cfg, server) = setup().await;
    let r = get(server.addr, "/api/x", &[("x-clawgate-token", ALICE)]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-user"][0], "alice");
    assert_eq!(h["x-openclaw-scopes"][0], "operator.read,operator.write");
    assert!(h.get("x-clawgate-token").is_none(), "token leaked upstream");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn authorization_scheme_is_case_insensitive() {
    let (up, _cfg, server) = setup().await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let auth = format!("{scheme} {ALICE}");
        let r = get(server.addr, "/", &[("authorization", &auth)]).await;
        assert_eq!(r.status, 200, "scheme {scheme}");
        assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "alice");
    }
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn each_member_reaches_its_own_upstream() {
    let prod = Upstream::start().await;
    let staging = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", prod.url()), ("staging", staging.url())],
        &[
            MemberSpec::new("alice", ALICE).set("UPSTREAM", "prod"),
            MemberSpec::new("bob", "bob-token-0123456789").set("UPSTREAM", "staging"),
        ],
    );
    let server = start(&cfg).await;

    let auth = format!("Bearer {ALICE}");
    let r = get(server.addr, "/a", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["host"][0], prod.addr.to_string());
    assert_eq!((prod.count(), staging.count()), (1, 0));

    let r = get(
        server.addr,
        "/b",
        &[("authorization", "Bearer bob-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["headers"]["host"][0], staging.addr.to_string());
    assert_eq!(seen["headers"]["x-forwarded-user"][0], "bob");
    assert_eq!((prod.count(), staging.count()), (1, 1));
}

#[tokio::test]
async fn member_without_upstream_uses_the_default_upstream() {
    let prod = Upstream::start().await;
    let staging = Upstream::start().await;
    // The default is named first, and sorts after "prod": it is chosen by
    // name, not by position.
    let cfg = ConfigDir::new(
        &[("staging", staging.url()), ("prod", prod.url())],
        &[MemberSpec::new("alice", ALICE).unset("UPSTREAM")],
    );
    let server = start(&cfg).await;
    let auth = format!("Bearer {ALICE}");
    let r = get(server.addr, "/", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["host"][0], staging.addr.to_string());
    assert_eq!((prod.count(), staging.count()), (0, 1));
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["upstream"], "staging");
}

#[tokio::test]
async fn post_body_is_forwarded_intact() {
    let (_up, _cfg, server) = setup().await;
    let body: String = (0..20_000).map(|i| format!("{i:05},")).collect();
    let auth = format!("Bearer {ALICE}");
    let r = request(
        server.addr,
        "POST",
        "/v1/chat",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body_len"], body.len());
    assert_eq!(seen["body_sha256"], sha256_hex(&body));
    assert_eq!(seen["headers"]["content-type"][0], "application/json");
    assert_eq!(seen["headers"]["content-length"][0], body.len().to_string());
}

#[tokio::test]
async fn query_string_is_kept() {
    let (_up, _cfg, server) = setup().await;
    let auth = format!("Bearer {ALICE}");
    let path = "/api/search?q=a%20b&tag=x&tag=y&empty=";
    let r = get(server.addr, path, &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], path);
}

#[tokio::test]
async fn audit_mode_lets_a_would_deny_pass_and_counts_it() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE).set("MODE", "audit")],
    );
    let server = start(&cfg).await;
    let auth = format!("Bearer {ALICE}");
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("origin", "https://evil.example.net"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "audit mode must let the request pass");
    assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "alice");
    assert_eq!(up.count(), 1);

    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            r#"clawgate_audit_would_deny_total{member="alice",reason="origin_not_allowed"}"#
        ),
        1.0
    );
    assert!(
        series(&m, "clawgate_denials_total").is_empty(),
        "an audited request is not a denial"
    );

    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["decision"], "audit_would_deny");
    assert_eq!(line["reason"], "origin_not_allowed");
    assert_eq!(line["status"], 200);
    assert_eq!(
        line["diff"]["origin"]["presented"],
        "https://evil.example.net"
    );
}

#[tokio::test]
async fn expired_token_gets_401_while_its_successor_works() {
    let up = Upstream::start().await;
    let old = "alice-old-token-0123456789";
    let new = "alice-new-token-0123456789";
    let tokens = format!(
        "{}@2020-01-01T00:00:00Z {}",
        sha256_hex(old),
        sha256_hex(new)
    );
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE).set("TOKEN_SHA256", &tokens)],
    );
    let server = start(&cfg).await;

    let r = get(
        server.addr,
        "/",
        &[("authorization", &format!("Bearer {old}"))],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let b = r.json();
    assert_eq!(b["reason"], "token_expired");
    assert_eq!(b["request_id"], r.request_id());
    assert!(b.get("member").is_none(), "a 401 names no member");
    assert_eq!(up.count(), 0);

    let r = get(server.addr, "/", &[("x-clawgate-token", new)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "alice");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn token_inside_its_rotation_window_still_works() {
    let up = Upstream::start().await;
    let tokens = format!("{}@2999-01-01T00:00:00Z", sha256_hex(ALICE));
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE).set("TOKEN_SHA256", &tokens)],
    );
    let server = start(&cfg).await;
    let r = get(
        server.addr,
        "/",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn empty_scopes_still_send_an_empty_scopes_header() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[
            MemberSpec::new("alice", ALICE).set("SCOPES", ""),
            MemberSpec::new("bob", "bob-token-0123456789").unset("SCOPES"),
        ],
    );
    let server = start(&cfg).await;
    for (token, who) in [(ALICE, "alice"), ("bob-token-0123456789", "bob")] {
        let r = get(
            server.addr,
            "/",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-openclaw-scopes", "operator.admin"),
            ],
        )
        .await;
        assert_eq!(r.status, 200);
        let h = &r.json()["headers"];
        assert_eq!(h["x-forwarded-user"][0], who);
        assert_eq!(
            h["x-openclaw-scopes"],
            serde_json::json!([""]),
            "{who}: the scopes header must be present and empty"
        );
    }
}

/// One keep-alive connection, several tokens: the per-connection credential
/// cache must never let a different or expired token ride on a good one.
#[tokio::test]
async fn one_keep_alive_connection_judges_every_token_on_its_own() {
    use http_body_util::Empty;
    let up = Upstream::start().await;
    let soon = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(2),
    );
    let cfg = ConfigDir::new(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE).set(
            "TOKEN_SHA256",
            &format!(
                "{} {}@{soon}",
                sha256_hex(ALICE),
                sha256_hex("short-lived-token")
            ),
        )],
    );
    let server = start(&cfg).await;
    let mut sender = keep_alive(server.addr).await;
    let mut status = |token: &'static str| {
        let req = http::Request::builder()
            .uri("/")
            .header("host", "gw.test")
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::new())
            .unwrap();
        let fut = sender.send_request(req);
        async move { fut.await.unwrap().status().as_u16() }
    };
    assert_eq!(status(ALICE).await, 200);
    assert_eq!(
        status("alice-token-0123456788").await,
        401,
        "a near miss after a hit"
    );
    assert_eq!(status(ALICE).await, 200);
    assert_eq!(status("short-lived-token").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        status("short-lived-token").await,
        401,
        "expired while cached"
    );
}
