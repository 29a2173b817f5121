//! Request targets (authority- and asterisk-form) and `Host` values that
//! are not `host[:port]`.

use super::*;

#[tokio::test]
async fn authority_and_asterisk_form_targets_get_400() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    for (name, line) in [
        ("35 authority-form GET", "GET gw.example.com:80 HTTP/1.1"),
        ("36 asterisk-form OPTIONS", "OPTIONS * HTTP/1.1"),
    ] {
        let a = expect_status(
            &h,
            name,
            &req(&[line, "Host: gw", &auth, "Connection: close"], b""),
            &[400],
            false,
        )
        .await;
        assert_refusal(name, &a, 400, "bad_target");
    }
    assert_eq!(h.up.count(), 2, "only the still-serving probes");
}

// Host

#[tokio::test]
async fn h2_authority_and_host_that_disagree_get_400() {
    let h = setup().await;
    let mut send = h2c(h.server.addr).await;
    let req = http::Request::builder()
        .uri("http://gw.example.com/")
        .header("host", "evil.example.net")
        .header("authorization", format!("Bearer {ALICE}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(b["reason"], "host_authority_mismatch");
    assert_eq!(h.up.count(), 0);
    still_serving(&h, "39").await;
}

#[tokio::test]
async fn host_that_is_not_an_authority_gets_400() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    for host in [
        "Host: user@gw.example.com",
        "Host: gw.example.com/path",
        "Host: gw example.com",
        "Host: gw.example.com:port",
        "Host: gw.example.com\x7f",
    ] {
        let name = format!("40 {host:?}");
        let a = expect_status(
            &h,
            &name,
            &req(&["GET / HTTP/1.1", host, &auth, "Connection: close"], b""),
            &[400],
            false,
        )
        .await;
        // A Host byte the HTTP parser refuses (DEL) is a malformed head;
        // the others reach the request path.
        let reason = if host.contains('\x7f') {
            "malformed_request"
        } else {
            "bad_host"
        };
        assert_refusal(&name, &a, 400, reason);
    }
    assert_eq!(h.up.count(), 5, "only the still-serving probes");
}

// Paths the gateway resolves elsewhere than a prefix match sees

/// `/hooks/` is public from loopback: no credential, no Origin check.
const HOOKS_PUBLIC: &str =
    "[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.1/32\"]\n";

/// Spellings of a way out of `/hooks/` (to `/admin` as the gateway's URL
/// parser resolves them), each of which a raw prefix match called public.
const TRAVERSALS: &[&str] = &[
    "/hooks/../admin",
    "/hooks/./../admin",
    "/hooks/%2e%2e/admin",
    "/hooks/%2E%2E/admin",
    "/hooks/%2e%2E/admin",
    "/hooks/.%2e/admin",
    "/hooks/%2e./admin",
    "/hooks/.%2E/admin",
    "/hooks/x/%2e%2e/%2e%2e/admin",
    "/hooks/..",
    "/hooks/%2e%2e",
    "/hooks/..;/admin",
    "/hooks/%2e%2e;x=1/admin",
    "/hooks/..%2fadmin",
    "/hooks/%2e%2e%2Fadmin",
    "/hooks/..%5cadmin",
    "/hooks/%5C..%5Cadmin",
    "/hooks\\..\\admin",
    "/hooks/..\\admin",
    "/hooks//../admin",
    "/%68ooks/%2e%2e/admin",
    "/hook%73/.%2e/admin?q=1",
    "//hooks/../admin",
    "/hooks/%00/../admin",
    "/hooks/%0d%0a/admin",
];

/// Paths under `/hooks/` that only look like a traversal, and what the
/// upstream sees of them.
const NOT_TRAVERSALS: &[(&str, &str)] = &[
    ("/hooks/a.b", "/hooks/a.b"),
    ("/hooks/..foo", "/hooks/..foo"),
    ("/hooks/foo../x", "/hooks/foo../x"),
    ("/hooks/.well-known/x", "/hooks/.well-known/x"),
    ("/hooks/.../x", "/hooks/.../x"),
    ("/hooks/x?next=../admin", "/hooks/x?next=../admin"),
    ("/hooks/x?%2e%2e/admin", "/hooks/x?%2e%2e/admin"),
    ("/hooks//x", "/hooks//x"),
    ("/hooks/a%20b", "/hooks/a%20b"),
    // Unreserved escapes are decided on and forwarded decoded.
    ("/%68ooks/x", "/hooks/x"),
    ("/hook%73/%7euser?q=%68", "/hooks/~user?q=%68"),
];

#[tokio::test]
async fn traversals_out_of_a_public_route_get_400_on_http1_and_never_reach_the_upstream() {
    let h = setup_with(HOOKS_PUBLIC).await;
    for path in TRAVERSALS {
        // A bodyless GET is read by the lean loop; a POST with a body by
        // hyper.
        let get = req(
            &[
                &format!("GET {path} HTTP/1.1"),
                "Host: gw",
                "Connection: close",
            ],
            b"",
        );
        let post = req(
            &[
                &format!("POST {path} HTTP/1.1"),
                "Host: gw",
                "Content-Length: 2",
                "Connection: close",
            ],
            b"{}",
        );
        for (how, bytes) in [("GET", get), ("POST", post)] {
            let name = format!("91 {how} {path}");
            let a = send(h.server.addr, &bytes, false).await;
            assert_refusal(&name, &a, 400, "bad_path");
        }
    }
    assert_eq!(h.up.seen(), Vec::<String>::new(), "forwarded a traversal");
    still_serving(&h, "91").await;
}

#[tokio::test]
async fn traversals_out_of_a_public_route_get_400_on_h2_and_never_reach_the_upstream() {
    let h = setup_with(HOOKS_PUBLIC).await;
    let mut send = h2c(h.server.addr).await;
    for path in TRAVERSALS {
        for method in ["GET", "POST"] {
            let r = http::Request::builder()
                .method(method)
                .uri(format!("http://gw{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = tokio::time::timeout(WAIT, send.send_request(r))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("91 h2 {method} {path}: {e}"));
            assert_eq!(resp.version(), Version::HTTP_2);
            assert_eq!(resp.status(), 400, "91 h2 {method} {path}");
            let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(b["reason"], "bad_path", "91 h2 {method} {path}");
            assert_eq!(b["request_id"], rid.as_str());
        }
    }
    assert_eq!(h.up.seen(), Vec::<String>::new(), "forwarded a traversal");
    still_serving(&h, "91 h2").await;
}

#[tokio::test]
async fn dotted_but_plain_paths_stay_public_on_http1_and_h2() {
    let h = setup_with(HOOKS_PUBLIC).await;
    let mut h2 = h2c(h.server.addr).await;
    for (path, upstream_saw) in NOT_TRAVERSALS {
        let line = format!("GET {path} HTTP/1.1");
        let a = send(
            h.server.addr,
            &req(&[&line, "Host: gw", "Connection: close"], b""),
            false,
        )
        .await;
        let r = a.reply();
        assert_eq!(r.status, 200, "92 {path}: {}", a.text());
        assert_eq!(r.json()["path"], *upstream_saw, "92 {path}");
        assert!(
            r.json()["headers"].get("x-forwarded-user").is_none(),
            "92 {path}: public"
        );

        let req = http::Request::builder()
            .uri(format!("http://gw{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(WAIT, h2.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200, "92 h2 {path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["path"], *upstream_saw, "92 h2 {path}");
    }
    // Outside the prefix once decoded: a member request, as before.
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET /x?y=../z HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    assert_eq!(a.reply().status, 200, "{}", a.text());
    assert_eq!(a.reply().json()["path"], "/x?y=../z");
    let a = send(
        h.server.addr,
        &req(
            &["GET /%68ooksx/a HTTP/1.1", "Host: gw", "Connection: close"],
            b"",
        ),
        false,
    )
    .await;
    assert_refusal("92 /%68ooksx/a", &a, 401, "no_credentials");
}

#[tokio::test]
async fn member_and_session_paths_get_the_same_path_checks() {
    let h = setup_with(HOOKS_PUBLIC).await;
    for path in [
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/_clawgate/../admin",
        "/_clawgate/%2E/login",
    ] {
        let line = format!("GET {path} HTTP/1.1");
        let a = send(
            h.server.addr,
            &req(
                &[&line, "Host: gw", &auth_line(ALICE), "Connection: close"],
                b"",
            ),
            false,
        )
        .await;
        assert_refusal(&format!("91 member {path}"), &a, 400, "bad_path");
    }
    assert_eq!(h.up.count(), 0);
    // An escaped session path is the session path (sessions are off here:
    // 404), not a gateway path.
    for path in ["/_clawgate/login", "/%5Fclawgate/%6cogin"] {
        let line = format!("GET {path} HTTP/1.1");
        let a = send(
            h.server.addr,
            &req(&[&line, "Host: gw", "Connection: close"], b""),
            false,
        )
        .await;
        assert_refusal(&format!("92 {path}"), &a, 404, "sessions_disabled");
    }
    assert_eq!(h.up.count(), 0);
}
