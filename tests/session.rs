//! Browser sessions: login with a token, a strict signed cookie, and the
//! cookie dying with its token or its own expiry (open WebSockets too).
//! The form's edges: `next` never leaves the origin, the body has a
//! deadline, failures count towards the per-IP block, the pages cannot be
//! framed, logout is a POST, and the gateway cannot set the cookie.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const ALICE: &str = "alice-session-token-0123";
const LOGIN: &str = "/_clawgate/login";
const LOGOUT: &str = "/_clawgate/logout";

async fn setup() -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    setup_with("").await
}

/// [`setup`] with more TOML (other sections) after `[session]`.
async fn setup_with(extra: &str) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    setup_ttl("1h", extra).await
}

/// Sessions that last `ttl`, and `extra` TOML.
async fn setup_ttl(
    ttl: &str,
    extra: &str,
) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    std::fs::write(cfg.path().join("session.key"), [7u8; 32]).unwrap();
    cfg.write_base(&format!(
        "[session]\nkey_file = \"session.key\"\nttl = \"{ttl}\"\n\n{extra}"
    ));
    let server = start(&cfg).await;
    (up, cfg, server)
}

async fn login(server: &clawgate::runtime::server::Server, token: &str) -> Reply {
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

/// POST a login form with these fields (form-encoded), to `target`.
async fn login_form(addr: std::net::SocketAddr, target: &str, fields: &[(&str, &str)]) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    request(addr, "POST", target, &form, &body).await
}

#[tokio::test]
async fn next_after_login_never_leaves_the_origin() {
    let (_up, _cfg, server) = setup().await;
    let bad = [
        "//evil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "/%2F/evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=y",
        "/\r\nSet-Cookie:x=y",
    ];
    for next in bad {
        // As the form's field, and in the query (encoded once more).
        let r = login_form(server.addr, LOGIN, &[("token", ALICE), ("next", next)]).await;
        assert_eq!(r.status, 303, "{next:?}");
        assert_eq!(r.header("location"), Some("/"), "{next:?}");
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        let r = login_form(server.addr, &format!("{LOGIN}?{q}"), &[("token", ALICE)]).await;
        assert_eq!(r.header("location"), Some("/"), "{next:?} in the query");
        let r = get(server.addr, &format!("{LOGIN}?{q}"), &[]).await;
        let page = String::from_utf8_lossy(&r.body).into_owned();
        assert!(page.contains("name=next value=\"/\""), "{next:?}: {page}");
    }
    // The issue's own spellings, raw in the query: decoded once to a tab
    // and to CR LF before the check.
    for q in ["next=/%09/evil.example", "next=/%0d%0aSet-Cookie:x=y"] {
        let wire = format!(
            "POST {LOGIN}?{q} HTTP/1.1\r\nhost: gw.test\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\nconnection: close\r\n\r\ntoken={ALICE}",
            "token=".len() + ALICE.len()
        );
        let text = raw(server.addr, wire.as_bytes(), Duration::from_secs(10)).await;
        let r = RawReply::parse(&text);
        assert_eq!(r.status, 303, "{q}");
        assert_eq!(r.header("location"), Some("/"), "{q}");
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(
            !head
                .bytes()
                .any(|b| b.is_ascii_control() && b != b'\r' && b != b'\n'),
            "a raw control byte in the head: {head:?}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("set-cookie:x"),
            "{head}"
        );
    }
    let r = login_form(
        server.addr,
        LOGIN,
        &[("token", ALICE), ("next", "/chat?x=1")],
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("/chat?x=1"),
        "a good next is kept"
    );
}

#[tokio::test]
async fn a_login_body_that_never_comes_gets_408_within_header_read() {
    let (_up, _cfg, server) = setup_with("[timeouts]\nheader_read = \"1s\"\n").await;
    let t0 = Instant::now();
    // Ten of the hundred bytes promised, then silence.
    let wire = format!(
        "POST {LOGIN} HTTP/1.1\r\nhost: gw.test\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: 100\r\n\r\ntoken=abcd"
    );
    let text = raw(server.addr, wire.as_bytes(), Duration::from_secs(8)).await;
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "the connection was held {waited:?} (header_read is 1s)"
    );
    let r = RawReply::parse(&text);
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["reason"], "request_body_timeout");
    assert_eq!(r.header("connection"), Some("close"));
    // The proxy keeps serving.
    assert_eq!(get(server.addr, LOGIN, &[]).await.status, 200);
}

#[tokio::test]
async fn failed_logins_count_and_a_blocked_address_cannot_log_in() {
    let limits = "[limits]\nauth_failures_per_minute = 3\nauth_block = \"60s\"\n";
    let (_up, _cfg, server) = setup_with(limits).await;
    for i in 0..3 {
        let r = login(&server, &format!("wrong-token-{i}")).await;
        assert_eq!(r.status, 401, "failure {i}");
    }
    let r = login(&server, "wrong-token-3").await;
    assert_eq!(r.status, 429, "the fourth failure in a minute blocks");
    assert_eq!(r.json()["reason"], "too_many_auth_failures");
    // Blocked: the right token learns nothing either, and gets no cookie.
    let r = login(&server, ALICE).await;
    assert_eq!(r.status, 429);
    assert!(r.header("set-cookie").is_none());
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "retry-after {secs}");
    // One block for the address, whichever path it guesses on.
    let api = get(
        server.addr,
        "/",
        &[("authorization", "Bearer nope-nope-nope")],
    )
    .await;
    assert_eq!(api.status, 429);
}

#[tokio::test]
async fn a_bad_bearer_elsewhere_and_bad_logins_share_one_count() {
    let limits = "[limits]\nauth_failures_per_minute = 2\nauth_block = \"60s\"\n";
    let (_up, _cfg, server) = setup_with(limits).await;
    let api = get(
        server.addr,
        "/",
        &[("authorization", "Bearer nope-nope-nope")],
    )
    .await;
    assert_eq!(api.status, 401);
    assert_eq!(login(&server, "wrong-token-1").await.status, 401);
    assert_eq!(
        login(&server, "wrong-token-2").await.status,
        429,
        "the login's failure counted with the API's"
    );
}

/// The fields every answer under `/_clawgate/` carries, each once.
fn assert_unframeable(headers: &http::HeaderMap, what: &str) {
    let one = |name: &str| {
        let all: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{what}: {name} {all:?}");
        all[0].to_str().unwrap().to_string()
    };
    assert_eq!(one("x-frame-options"), "DENY", "{what}");
    assert!(
        one("content-security-policy").contains("frame-ancestors 'none'"),
        "{what}"
    );
    assert_eq!(one("cache-control"), "no-store", "{what}");
    assert_eq!(one("referrer-policy"), "same-origin", "{what}");
}

#[tokio::test]
async fn pages_under_clawgate_cannot_be_framed_or_cached() {
    let (_up, _cfg, server) = setup().await;
    let page = get(server.addr, LOGIN, &[]).await;
    assert_eq!(page.status, 200);
    assert_unframeable(&page.headers, "login page");
    let ok = login(&server, ALICE).await;
    assert_eq!(ok.status, 303);
    assert_unframeable(&ok.headers, "login 303");
    let bad = login(&server, "wrong-token").await;
    assert_eq!(bad.status, 401);
    assert_unframeable(&bad.headers, "login 401");
    let put = request(server.addr, "PUT", LOGIN, &[], "").await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
    assert_unframeable(&put.headers, "login 405");

    // And on h2.
    let mut h2 = h2c(server.addr).await;
    let req = http::Request::builder()
        .uri(format!("http://{}{LOGIN}", server.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.send_request(req))
        .await
        .expect("answered within 10s")
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_unframeable(resp.headers(), "login page over h2");
}

#[tokio::test]
async fn logout_is_a_post() {
    let (_up, _cfg, server) = setup().await;
    let cookie = cookie_pair(login(&server, ALICE).await.header("set-cookie").unwrap());
    let r = get(server.addr, LOGOUT, &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert!(r.header("set-cookie").is_none(), "a GET clears nothing");
    assert_unframeable(&r.headers, "logout 405");
    let r = request(server.addr, "POST", LOGOUT, &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some(LOGIN));
    let cleared = r.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("clawgate_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

/// The `Set-Cookie` values of a response.
fn set_cookies(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_gateway_cannot_set_the_session_cookie() {
    let (_up, _cfg, server) = setup().await;
    let bearer = format!("Bearer {ALICE}");
    let want = ["theme=dark", "lang=en; Path=/"];
    let r = get(server.addr, "/set-cookie", &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(set_cookies(&r.headers), want, "HTTP/1.1");

    let mut h2 = h2c(server.addr).await;
    let req = http::Request::builder()
        .uri(format!("http://{}/set-cookie", server.addr))
        .header("authorization", &bearer)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.send_request(req))
        .await
        .expect("answered within 10s")
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(set_cookies(resp.headers()), want, "h2");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"cookies");
}

#[tokio::test]
async fn a_sessions_expiry_closes_its_open_websocket() {
    // Whole seconds in the cookie: it expires 2 to 3 s after the login.
    let (_up, cfg, server) = setup_ttl("3s", "").await;
    let cookie = cookie_pair(login(&server, ALICE).await.header("set-cookie").unwrap());
    let mut req = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie).unwrap());
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(req, tcp),
    )
    .await
    .expect("upgrade answered within 10s")
    .expect("the session cookie opens the WebSocket");
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("before expiry")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("an echo within 2s");
    assert_eq!(echoed.unwrap().unwrap(), Message::text("before expiry"));
    let t0 = Instant::now();
    let frame = close_frame(&mut ws, Duration::from_secs(8))
        .await
        .expect("a close frame once the session expired");
    assert!(t0.elapsed() <= Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("session_expired"), "{}", frame.reason);
    let line = cfg
        .websocket_line(&rid)
        .await
        .expect("a websocket access-log line at close");
    assert_eq!(line["decision"], "revoked");
    assert_eq!(line["reason"], "session_expired");
}
