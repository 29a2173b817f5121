//! Heads that are too large or malformed: a 4xx, and the proxy keeps
//! serving.

use super::*;

#[tokio::test]
async fn oversized_and_malformed_heads_get_4xx_and_the_proxy_keeps_serving() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let big = "a".repeat(70 * 1024);
    let long_uri = format!("GET /{big} HTTP/1.1");
    let long_header = format!("X-Big: {big}");
    let kib = "b".repeat(1024);
    let many_kib: Vec<String> = (0..70).map(|i| format!("X-K{i}: {kib}")).collect();
    let many_small: Vec<String> = (0..101).map(|i| format!("X-H{i}: v")).collect();

    let mut lines = vec!["GET / HTTP/1.1", "Host: gw", auth.as_str()];
    lines.extend(many_kib.iter().map(String::as_str));
    let too_big_total = req(&lines, b"");
    let mut lines = vec!["GET / HTTP/1.1", "Host: gw", auth.as_str()];
    lines.extend(many_small.iter().map(String::as_str));
    let too_many = req(&lines, b"");

    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "1 request line over max_header_bytes",
            req(&[&long_uri, "Host: gw", &auth], b""),
            &[414, 431],
        ),
        (
            "2 one header over max_header_bytes",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, &long_header], b""),
            &[431],
        ),
        ("3 headers adding up past the limit", too_big_total, &[431]),
        ("4 101 headers", too_many, &[431]),
        (
            "5 NUL in a header value",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, "X-A: a\0b"], b""),
            &[400],
        ),
        (
            "6 bare CR in a header value",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, "X-A: a\rb"], b""),
            &[400],
        ),
        (
            "7 space inside a header name",
            req(&["GET / HTTP/1.1", "Host: gw", &auth, "X Bad: 1"], b""),
            &[400],
        ),
        (
            "8 whitespace before the colon",
            req(&["GET / HTTP/1.1", "Host : gw", &auth], b""),
            &[400],
        ),
        (
            "9 non-token method",
            req(&["G@T / HTTP/1.1", "Host: gw", &auth], b""),
            &[400],
        ),
        (
            "10 unknown HTTP version",
            req(&["GET / HTTP/9.9", "Host: gw", &auth], b""),
            &[400, 505],
        ),
        (
            "11 obs-fold continuation line",
            req(
                &["GET / HTTP/1.1", "Host: gw", &auth, "X-A: one", " two"],
                b"",
            ),
            &[400],
        ),
    ];
    for (name, bytes, statuses) in &cases {
        expect_status(&h, name, bytes, statuses, false).await;
    }
    let garbage: Vec<u8> = (0u8..=255).cycle().skip(3).take(4096).collect();
    expect_status(&h, "12 binary garbage", &garbage, &[400], true).await;
    assert_eq!(
        h.up.count(),
        cases.len() + 1,
        "only the still-serving probes"
    );
}
