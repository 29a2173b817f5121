//! Header hygiene: the upstream believes `x-forwarded-user` and
//! `x-openclaw-scopes` because only clawgate sets them, so nothing a caller
//! sends may survive as identity, forwarding or credential information.

mod common;

use common::*;

const ALICE: &str = "alice-token-0123456789";

async fn setup_with(
    extra_toml: &str,
    alice: MemberSpec,
) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[alice]);
    cfg.write_base(extra_toml);
    let server = start(&cfg).await;
    (up, cfg, server)
}

async fn setup() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    setup_with("", MemberSpec::new("alice", ALICE)).await
}

fn bearer() -> String {
    format!("Bearer {ALICE}")
}

const TRUSTED: &str = "[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

#[tokio::test]
async fn forged_identity_and_forwarding_headers_never_reach_the_upstream() {
    let (_up, _cfg, server) = setup().await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("host", "gw.example.com"),
            ("x-forwarded-user", "root"),
            ("x-openclaw-scopes", "operator.admin"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.example.net"),
            ("x-forwarded-port", "1"),
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-real-ip", "6.6.6.6"),
            ("x-clawgate-member", "root"),
            ("x-clawgate-whatever", "1"),
            ("accept", "text/plain"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = r.json()["headers"].clone();
    assert_eq!(h["x-forwarded-user"], serde_json::json!(["alice"]));
    assert_eq!(h["x-openclaw-scopes"], serde_json::json!(["operator.read"]));
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(h["x-forwarded-host"], serde_json::json!(["gw.example.com"]));
    for gone in [
        "x-forwarded-port",
        "forwarded",
        "x-real-ip",
        "x-clawgate-member",
        "x-clawgate-whatever",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(h["accept"][0], "text/plain", "ordinary headers pass");
}

#[tokio::test]
async fn x_forwarded_for_is_overwritten_never_appended() {
    let (_up, _cfg, server) = setup().await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("x-forwarded-for", "6.6.6.6, 7.7.7.7"),
            ("x-forwarded-for", "8.8.8.8"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
}

#[tokio::test]
async fn host_upstream_is_the_upstreams_authority_and_x_forwarded_host_is_the_clients() {
    let (up, _cfg, server) = setup().await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[("authorization", &auth), ("host", "gw.example.com:8443")],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["host"], serde_json::json!([up.addr.to_string()]));
    assert_eq!(
        h["x-forwarded-host"],
        serde_json::json!(["gw.example.com:8443"])
    );
}

#[tokio::test]
async fn session_cookie_is_stripped_but_other_cookies_pass() {
    let (_up, _cfg, server) = setup().await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("cookie", "theme=dark; clawgate_session=abc.def; lang=en"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["headers"]["cookie"],
        serde_json::json!(["theme=dark; lang=en"])
    );

    let r = get(
        server.addr,
        "/",
        &[("authorization", &auth), ("cookie", "clawgate_session=abc")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["headers"].get("cookie").is_none(),
        "a Cookie header with only the session cookie is dropped whole"
    );
}

#[tokio::test]
async fn member_credentials_are_stripped_before_forwarding() {
    let (_up, _cfg, server) = setup().await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[("authorization", &auth), ("x-clawgate-token", ALICE)],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-user"][0], "alice");
    assert!(
        h.get("authorization").is_none(),
        "Authorization leaked: {h}"
    );
    assert!(h.get("x-clawgate-token").is_none(), "token leaked: {h}");
}

const HOOKS_FROM_LOOPBACK: &str =
    "[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.1/32\"]\n";

#[tokio::test]
async fn public_route_gets_no_identity_and_keeps_its_own_authorization() {
    let (up, cfg, server) = setup_with(HOOKS_FROM_LOOPBACK, MemberSpec::new("alice", ALICE)).await;
    let r = get(
        server.addr,
        "/hooks/github?delivery=1",
        &[
            ("authorization", "Bearer hook-secret"),
            ("x-forwarded-user", "alice"),
            ("x-openclaw-scopes", "operator.admin"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-clawgate-token", ALICE),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = r.json();
    let h = &seen["headers"];
    assert_eq!(seen["path"], "/hooks/github?delivery=1");
    assert_eq!(
        h["authorization"],
        serde_json::json!(["Bearer hook-secret"])
    );
    assert!(
        h.get("x-forwarded-user").is_none(),
        "identity on a public route: {h}"
    );
    assert!(
        h.get("x-openclaw-scopes").is_none(),
        "scopes on a public route: {h}"
    );
    assert!(
        h.get("x-clawgate-token").is_none(),
        "member token leaked: {h}"
    );
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-request-id"][0], r.request_id());
    assert_eq!(up.count(), 1);
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["decision"], "public");
    assert_eq!(line["member"], "-");
}

#[tokio::test]
async fn paths_outside_the_public_prefix_still_need_credentials() {
    let (up, _cfg, server) = setup_with(HOOKS_FROM_LOOPBACK, MemberSpec::new("alice", ALICE)).await;
    for path in ["/hooks", "/hooksx/a", "/api/hooks/a"] {
        let r = get(
            server.addr,
            path,
            &[("authorization", "Bearer hook-secret")],
        )
        .await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.json()["reason"], "bad_token");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn public_route_refuses_a_source_outside_its_cidrs_with_403_and_no_allowlist() {
    let hooks = "[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"10.0.0.0/8\"]\n";
    let (up, cfg, server) = setup_with(hooks, MemberSpec::new("alice", ALICE)).await;
    let r = get(
        server.addr,
        "/hooks/github",
        &[
            ("authorization", "Bearer hook-secret"),
            ("origin", "https://hooks.example.net"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let b = r.json();
    // A stranger learns that it was refused, not what would pass.
    assert_eq!(
        b,
        serde_json::json!({
            "error": "forbidden",
            "reason": "cidr_not_allowed",
            "request_id": r.request_id(),
        })
    );
    let text = String::from_utf8_lossy(&r.body);
    for leak in ["10.0.0.0/8", "/hooks/", "127.0.0.1"] {
        assert!(!text.contains(leak), "{leak} in the body: {text}");
    }
    assert_eq!(up.count(), 0);
    // On-call still sees the whole diff.
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["reason"], "cidr_not_allowed");
    assert_eq!(line["member"], "-");
    assert_eq!(line["diff"]["client_ip"]["presented"], "127.0.0.1");
    assert_eq!(
        line["diff"]["client_ip"]["allowed"],
        serde_json::json!(["10.0.0.0/8"])
    );
    assert!(line["diff"]["origin"]["hint"]
        .as_str()
        .unwrap()
        .contains("/hooks/"));

    // A member's own 403 on the same proxy keeps its diff in the body.
    let r = get(
        server.addr,
        "/api",
        &[
            ("authorization", &bearer()),
            ("origin", "https://evil.example.net"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let b = r.json();
    assert_eq!(b["reason"], "origin_not_allowed");
    assert_eq!(b["member"], "alice");
    assert_eq!(b["origin"]["presented"], "https://evil.example.net");
    assert_eq!(
        b["origin"]["allowed"],
        serde_json::json!(["none", "https://alice.example.com"])
    );
    assert_eq!(
        b["client_ip"]["allowed"],
        serde_json::json!(["127.0.0.0/8", "::1/128"])
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn rightmost_untrusted_forwarded_for_hop_is_the_client_ip() {
    let alice = MemberSpec::new("alice", ALICE).set("EGRESS_CIDRS", "198.51.100.0/24");
    let (_up, cfg, server) = setup_with(TRUSTED, alice).await;
    let auth = bearer();
    // 6.6.6.6 was written by someone we cannot vouch for; 127.0.0.1 is a
    // trusted proxy hop and is skipped.
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 127.0.0.1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        serde_json::json!(["198.51.100.7"])
    );
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["client_ip"], "198.51.100.7");
}

#[tokio::test]
async fn forwarded_client_ip_outside_egress_cidrs_gets_403() {
    let alice = MemberSpec::new("alice", ALICE).set("EGRESS_CIDRS", "198.51.100.0/24");
    let (up, _cfg, server) = setup_with(TRUSTED, alice).await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("x-forwarded-for", "198.51.100.7, 203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let b = r.json();
    assert_eq!(b["reason"], "cidr_not_allowed");
    assert_eq!(b["member"], "alice");
    assert_eq!(b["client_ip"]["presented"], "203.0.113.9");
    assert_eq!(
        b["client_ip"]["allowed"],
        serde_json::json!(["198.51.100.0/24"])
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_choose_the_client_ip() {
    // No trusted proxies: the socket peer (127.0.0.1) is the client, even
    // when X-Forwarded-For claims an allowed address.
    let alice = MemberSpec::new("alice", ALICE).set("EGRESS_CIDRS", "198.51.100.0/24");
    let (up, _cfg, server) = setup_with("", alice).await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("x-forwarded-for", "198.51.100.7"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["client_ip"]["presented"], "127.0.0.1");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn request_id_from_a_trusted_proxy_is_kept() {
    let (_up, cfg, server) = setup_with(TRUSTED, MemberSpec::new("alice", ALICE)).await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[("authorization", &auth), ("x-request-id", "edge-4711")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.request_id(), "edge-4711");
    assert_eq!(
        r.json()["headers"]["x-request-id"],
        serde_json::json!(["edge-4711"])
    );
    cfg.log_line("edge-4711").await;
}

#[tokio::test]
async fn request_id_from_an_untrusted_peer_is_replaced() {
    let (_up, _cfg, server) = setup().await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[("authorization", &auth), ("x-request-id", "edge-4711")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.request_id(), "edge-4711");
    assert!(is_uuid_v7(r.request_id()), "{}", r.request_id());
    assert_eq!(
        r.json()["headers"]["x-request-id"],
        serde_json::json!([r.request_id()])
    );
}

#[tokio::test]
async fn malformed_forwarded_for_from_a_trusted_peer_gets_400() {
    let (up, _cfg, server) = setup_with(TRUSTED, MemberSpec::new("alice", ALICE)).await;
    let auth = bearer();
    for bad in ["unknown", "1.2.3", "198.51.100.7, not-an-ip"] {
        let r = get(
            server.addr,
            "/",
            &[("authorization", &auth), ("x-forwarded-for", bad)],
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
        let b = r.json();
        assert_eq!(b["reason"], "bad_x_forwarded_for");
        assert_eq!(b["request_id"], r.request_id());
        assert!(is_uuid_v7(r.request_id()));
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn trusted_proxy_keeps_its_forwarded_proto_and_host() {
    let (_up, _cfg, server) = setup_with(TRUSTED, MemberSpec::new("alice", ALICE)).await;
    let auth = bearer();
    let r = get(
        server.addr,
        "/",
        &[
            ("authorization", &auth),
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "gw.example.com"),
            ("x-forwarded-user", "root"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-proto"], serde_json::json!(["https"]));
    assert_eq!(h["x-forwarded-host"], serde_json::json!(["gw.example.com"]));
    assert_eq!(
        h["x-forwarded-user"],
        serde_json::json!(["alice"]),
        "identity is never taken from a caller, trusted or not"
    );
}

/// The config with `identity_header = "x-remote-user"` on the upstream,
/// and `/hooks/` public from loopback.
async fn setup_remote_user() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let mut cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let url = format!("url = \"{}\"\n", up.url());
    assert!(cfg.base.contains(&url));
    cfg.base = cfg
        .base
        .replace(&url, &format!("{url}identity_header = \"x-remote-user\"\n"));
    cfg.write_base(HOOKS_FROM_LOOPBACK);
    let server = start(&cfg).await;
    (up, cfg, server)
}

#[tokio::test]
async fn a_custom_identity_header_carries_the_member_and_x_forwarded_user_is_not_sent() {
    let (_up, _cfg, server) = setup_remote_user().await;
    let auth = bearer();
    let forged = [
        ("authorization", auth.as_str()),
        ("x-remote-user", "root"),
        ("X-Remote-User", "admin"),
        ("x-forwarded-user", "root"),
    ];
    let r = get(server.addr, "/", &forged).await;
    assert_eq!(r.status, 200);
    let h = r.json()["headers"].clone();
    assert_eq!(h["x-remote-user"], serde_json::json!(["alice"]), "{h}");
    assert!(h.get("x-forwarded-user").is_none(), "{h}");

    // The same over h2.
    let mut h2 = h2c(server.addr).await;
    let mut req = http::Request::builder().uri(format!("http://{}/h2", server.addr));
    for (k, v) in forged {
        req = req.header(k, v);
    }
    let resp = h2
        .send_request(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let h = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["headers"].clone();
    assert_eq!(h["x-remote-user"], serde_json::json!(["alice"]), "{h}");
    assert!(h.get("x-forwarded-user").is_none(), "{h}");
}

#[tokio::test]
async fn a_custom_identity_header_sent_by_a_public_caller_is_removed() {
    let (up, _cfg, server) = setup_remote_user().await;
    let r = get(
        server.addr,
        "/hooks/github",
        &[("x-remote-user", "alice"), ("x-forwarded-user", "alice")],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = r.json()["headers"].clone();
    assert!(h.get("x-remote-user").is_none(), "{h}");
    assert!(h.get("x-forwarded-user").is_none(), "{h}");
    assert_eq!(up.count(), 1);
}
