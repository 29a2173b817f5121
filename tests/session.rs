//! Browser sessions: login with a token, a strict signed cookie, and the
//! cookie dying with its token.

mod common;

use common::*;

const ALICE: &str = "alice-session-token-0123";

async fn setup() -> (Upstream, ConfigDir, clawgate::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    std::fs::write(cfg.path().join("session.key"), [7u8; 32]).unwrap();
    cfg.write_base("[session]\nkey_file = \"session.key\"\nttl = \"1h\"\n");
    let server = start(&cfg).await;
    (up, cfg, server)
}

async fn login(server: &clawgate::server::Server, token: &str) -> Reply {
    request(
        server.addr,
        "POST",
        "/_clawgate/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={token}&next=%2Fchat"),
    )
    .await
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn login_sets_a_strict_cookie_that_identifies_the_member() {
    let (_up, _cfg, server) = setup().await;
    let r = login(&server, ALICE).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/chat"));
    let set = r.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(ALICE), "the token must not be in the cookie");
    let cookie = format!("{}; theme=dark", cookie_pair(&set));
    let r = get(server.addr, "/", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-user"][0], "alice");
    assert_eq!(
        h["cookie"][0], "theme=dark",
        "session cookie must not reach the gateway"
    );
}

#[tokio::test]
async fn login_with_a_wrong_token_gets_401() {
    let (_up, _cfg, server) = setup().await;
    let r = login(&server, "not-a-token").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "bad_token");
    assert!(r.header("set-cookie").is_none());
}

#[tokio::test]
async fn a_forged_cookie_gets_401() {
    let (_up, _cfg, server) = setup().await;
    let r = get(
        server.addr,
        "/",
        &[(
            "cookie",
            "clawgate_session=djF8YWxpY2V8dG9rX3h8OTk5OTk5OTk5OQ.AAAA",
        )],
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn session_dies_when_its_token_is_removed() {
    let (_up, cfg, server) = setup().await;
    let set = login(&server, ALICE)
        .await
        .header("set-cookie")
        .unwrap()
        .to_string();
    let cookie = cookie_pair(&set);
    assert_eq!(
        get(server.addr, "/", &[("cookie", &cookie)]).await.status,
        200
    );
    cfg.write_member(&MemberSpec::new("alice", "a-different-token-999"));
    server.reload().unwrap();
    let r = get(server.addr, "/", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn browser_without_session_is_sent_to_login() {
    let (_up, _cfg, server) = setup().await;
    let r = get(
        server.addr,
        "/chat?x=1",
        &[("accept", "text/html,application/xhtml+xml")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/_clawgate/login?next=%2Fchat%3Fx%3D1")
    );
    let r = get(server.addr, "/_clawgate/login", &[]).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("name=token"));
}

#[tokio::test]
async fn login_is_refused_from_a_disallowed_origin_with_the_diff() {
    let (_up, _cfg, server) = setup().await;
    let r = request(
        server.addr,
        "POST",
        "/_clawgate/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "https://evil.example.net"),
        ],
        &format!("token={ALICE}"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["origin"]["presented"], "https://evil.example.net");
}

#[tokio::test]
async fn a_browser_with_a_stale_cookie_is_sent_back_to_login() {
    let (_up, cfg, server) = setup().await;
    let set = login(&server, ALICE)
        .await
        .header("set-cookie")
        .unwrap()
        .to_string();
    let cookie = cookie_pair(&set);
    cfg.write_member(&MemberSpec::new("alice", "a-rotated-token-777"));
    server.reload().unwrap();
    let page = [("cookie", cookie.as_str()), ("accept", "text/html")];
    let r = get(server.addr, "/", &page).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/_clawgate/login?next=%2F"));
    assert!(
        r.header("set-cookie").unwrap().contains("Max-Age=0"),
        "stale cookie cleared"
    );
    let api = get(server.addr, "/", &[("cookie", &cookie)]).await;
    assert_eq!(api.status, 401);
    assert_eq!(
        api.json()["reason"],
        "bad_token",
        "a removed token is bad_token, as on WebSockets"
    );
}
