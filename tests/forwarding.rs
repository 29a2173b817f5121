//! Members reach their upstream with identity injected and credentials
//! stripped; the upstream sees exactly what DESIGN.md promises.

mod common;

use common::*;

const ALICE: &str = "alice-token-0123456789";

async fn setup() -> (Upstream, ConfigDir, clawgate::server::Server) {
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
