//! Request smuggling: conflicting or malformed framing never lets a hidden
//! request reach the upstream.

use super::*;

/// A request hidden in a body: no credential, a forged identity, its own path.
const SMUGGLED: &str =
    "GET /smuggled HTTP/1.1\r\nHost: gw\r\nX-Forwarded-User: root\r\nContent-Length: 0\r\n\r\n";

fn smuggled_nowhere(h: &Hostile, name: &str) {
    let seen = h.up.seen();
    assert!(
        !seen.iter().any(|s| s.contains("/smuggled")),
        "{name}: the upstream saw the smuggled request: {seen:?}"
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_and_nothing_is_smuggled() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    // Framed by Content-Length, the body would end after "0\r\n\r\n" and the
    // smuggled request would follow; framed as chunked, the same.
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let cl = format!("Content-Length: {}", 5);
    for (name, lines) in [
        (
            "13 CL then TE",
            vec![
                "POST /outer HTTP/1.1",
                "Host: gw",
                auth.as_str(),
                cl.as_str(),
                "Transfer-Encoding: chunked",
            ],
        ),
        (
            "14 TE then CL",
            vec![
                "POST /outer HTTP/1.1",
                "Host: gw",
                auth.as_str(),
                "Transfer-Encoding: chunked",
                cl.as_str(),
            ],
        ),
    ] {
        let before = h.up.count();
        let a = send(h.server.addr, &req(&lines, body.as_bytes()), false).await;
        // RFC 9112 §6.1: Transfer-Encoding wins and the connection closes
        // after the response, so the rest is never read as a request.
        assert_eq!(a.statuses(), vec![200], "{name}: {}", a.text());
        let seen = a.reply().json();
        assert_eq!(seen["path"], "/outer", "{name}");
        assert_eq!(seen["body_len"], 0, "{name}");
        assert!(
            seen["headers"].get("content-length").is_none(),
            "{name}: a stale Content-Length went upstream: {seen}"
        );
        assert_eq!(h.up.count(), before + 1, "{name}: one request upstream");
        smuggled_nowhere(&h, name);
        still_serving(&h, name).await;
    }
}

#[tokio::test]
async fn conflicting_framing_headers_get_400_before_anything_is_forwarded() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let post = |extra: &[&str]| {
        let mut lines = vec!["POST /outer HTTP/1.1", "Host: gw", auth.as_str()];
        lines.extend_from_slice(extra);
        req(&lines, body.as_bytes())
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "15 two different Content-Lengths",
            post(&["Content-Length: 5", "Content-Length: 40"]),
        ),
        (
            "16 Content-Length list 5, 6",
            post(&["Content-Length: 5, 6"]),
        ),
        ("17 Content-Length +5", post(&["Content-Length: +5"])),
        ("17 Content-Length -1", post(&["Content-Length: -1"])),
        ("17 Content-Length 0x5", post(&["Content-Length: 0x5"])),
        (
            "18 Transfer-Encoding: chunked, identity",
            post(&["Transfer-Encoding: chunked, identity"]),
        ),
        (
            "19 Transfer-Encoding: identity",
            post(&["Transfer-Encoding: identity"]),
        ),
        (
            "19 Transfer-Encoding: xchunked",
            post(&["Transfer-Encoding: xchunked"]),
        ),
        (
            "19 chunked then identity in two headers",
            post(&["Transfer-Encoding: chunked", "Transfer-Encoding: identity"]),
        ),
        (
            "20 Transfer-Encoding over an obs-fold",
            post(&["Transfer-Encoding:", " chunked"]),
        ),
        (
            "21 Transfer-Encoding on HTTP/1.0",
            req(
                &[
                    "POST /outer HTTP/1.0",
                    "Host: gw",
                    &auth,
                    "Transfer-Encoding: chunked",
                ],
                body.as_bytes(),
            ),
        ),
    ];
    for (name, bytes) in &cases {
        let a = expect_status(&h, name, bytes, &[400], false).await;
        assert_eq!(a.statuses(), vec![400], "{name}: one answer, then closed");
        smuggled_nowhere(&h, name);
    }
    assert!(
        !h.up.seen().iter().any(|s| s.contains("/outer")),
        "a refused request reached the upstream: {:?}",
        h.up.seen()
    );
}

#[tokio::test]
async fn two_identical_content_lengths_reach_the_upstream_as_one() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let a = send(
        h.server.addr,
        &req(
            &[
                "POST /outer HTTP/1.1",
                "Host: gw",
                &auth,
                "Content-Length: 5",
                "Content-Length: 5",
                "Connection: close",
            ],
            b"hello",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "22: {}", a.text());
    let seen = r.json();
    assert_eq!(seen["body_len"], 5);
    assert_eq!(seen["headers"]["content-length"], serde_json::json!(["5"]));
    still_serving(&h, "22").await;
}

#[tokio::test]
async fn bytes_past_content_length_are_a_second_request_judged_on_its_own() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    // Content-Length: 5 covers "hello"; what follows is parsed as the next
    // request on the connection, and it carries no credential.
    let mut body = b"hello".to_vec();
    body.extend_from_slice(
        SMUGGLED
            .replace("Content-Length: 0", "Connection: close")
            .as_bytes(),
    );
    let a = send(
        h.server.addr,
        &req(
            &[
                "POST /outer HTTP/1.1",
                "Host: gw",
                &auth,
                "Content-Length: 5",
            ],
            &body,
        ),
        false,
    )
    .await;
    assert_eq!(a.statuses(), vec![200, 401], "23: {}", a.text());
    assert_eq!(h.up.seen(), vec!["POST /outer".to_string()]);
    still_serving(&h, "23").await;
}
