//! Every answer under `/_clawgate/` is unframeable and uncached (README,
//! "Browsers"), also the refusals taken before the login form's handler
//! runs: a duplicate `Origin` or `Host`, no `Host`, or a dot segment, on
//! `POST /_clawgate/login` is refused by the common request checks, and
//! that answer must carry the same fields as the form's own.

mod common;

use std::time::Duration;

use common::*;

const ALICE: &str = "alice-pages-token-0123";

/// Header names of a raw response's head, lower-cased, with their values.
fn head_fields(resp: &str) -> Vec<(String, String)> {
    let head = resp.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn refusals_before_the_login_handler_cannot_be_framed_either() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    std::fs::write(cfg.path().join("session.key"), [7u8; 32]).unwrap();
    cfg.write_base("[session]\nkey_file = \"session.key\"\nttl = \"1h\"\n");
    let server = start(&cfg).await;
    let body = format!("token={ALICE}");
    let cases = [
        (
            "duplicate Origin",
            format!(
                "POST /_clawgate/login HTTP/1.1\r\nHost: gw\r\nOrigin: https://a.example\r\n\
                 Origin: https://b.example\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        ),
        (
            "duplicate Host",
            format!(
                "POST /_clawgate/login HTTP/1.1\r\nHost: a\r\nHost: b\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        ),
        (
            "GET without Host",
            "GET /_clawgate/login HTTP/1.1\r\nConnection: close\r\n\r\n".to_string(),
        ),
        (
            "a dot segment (bad_path)",
            "GET /_clawgate/login/.. HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".to_string(),
        ),
    ];
    for (what, req) in cases {
        let resp = raw(server.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(resp.starts_with("HTTP/1.1 400 "), "{what}: {resp}");
        let fields = head_fields(&resp);
        let has =
            |name: &str, want: &str| fields.iter().any(|(n, v)| n == name && v.contains(want));
        assert!(has("x-frame-options", "DENY"), "{what}: {resp}");
        assert!(
            has("content-security-policy", "frame-ancestors 'none'"),
            "{what}: {resp}"
        );
        assert!(has("referrer-policy", "same-origin"), "{what}: {resp}");
    }
    // The form itself still answers with them (the control).
    let page = get(server.addr, "/_clawgate/login", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}
