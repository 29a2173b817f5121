//! A refusal to a page load (`Accept: text/html`, not JSON) is a short
//! HTML page with the same reason, diff and request ID as the JSON body;
//! every other client keeps the JSON.

mod common;

use common::*;

const ALICE: &str = "alice-token-0123456789";
const NAV: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn a_browser_on_a_wrong_origin_sees_a_page_with_the_diff_and_the_line_to_send() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let auth = bearer(ALICE);
    let wrong = [
        ("authorization", auth.as_str()),
        ("origin", "http://alice.example.com"),
        ("accept", NAV),
    ];
    let r = get(server.addr, "/chat", &wrong).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let page = body(&r);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("origin_not_allowed"), "{page}");
    assert!(
        page.contains("https://alice.example.com"),
        "the allowed origin: {page}"
    );
    assert!(page.contains("127.0.0.0/8"), "the allowed networks: {page}");
    let line = format!(
        "request_id={} reason=origin_not_allowed member=alice",
        r.request_id()
    );
    assert!(page.contains(&line), "{page}");
    assert_eq!(up.count(), 0);

    // The same request from a script gets the JSON, with the same diff.
    let api = [
        wrong[0],
        wrong[1],
        ("accept", "application/json, text/html"),
    ];
    let r = get(server.addr, "/chat", &api).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["origin"]["allowed"][0], "none");
}

#[tokio::test]
async fn a_page_without_credentials_says_how_to_sign_in_and_keeps_the_challenge() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let r = get(server.addr, "/", &[("accept", NAV)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"clawgate\"")
    );
    let page = body(&r);
    assert!(page.contains("no_credentials"), "{page}");
    assert!(page.contains("/_clawgate/login"), "{page}");
    assert!(page.contains(r.request_id()), "{page}");
    assert!(
        !page.contains("alice"),
        "a stranger learns no member: {page}"
    );
}

#[tokio::test]
async fn what_the_request_presented_is_escaped_and_a_stranger_sees_no_allowlist() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base("[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"10.0.0.0/8\"]\n");
    let server = start(&cfg).await;
    let auth = bearer(ALICE);
    let evil = "https://x\"><script>alert(1)</script>.example";
    let r = get(
        server.addr,
        "/",
        &[("authorization", &auth), ("origin", evil), ("accept", NAV)],
    )
    .await;
    assert_eq!(r.status, 403);
    let page = body(&r);
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;"),
        "the presented origin is shown, escaped: {page}"
    );

    let r = get(server.addr, "/hooks/x", &[("accept", NAV)]).await;
    assert_eq!(r.status, 403);
    let page = body(&r);
    assert!(page.contains("cidr_not_allowed"), "{page}");
    for leak in ["10.0.0.0/8", "127.0.0.1", "alice"] {
        assert!(!page.contains(leak), "{leak} in {page}");
    }
}
