//! Chunked and sized bodies that break the framing or the body limit.

use super::*;

#[tokio::test]
async fn chunked_encoding_errors_get_400_and_are_not_blamed_on_the_upstream() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let chunked = |body: &str| {
        req(
            &[
                "POST /upload HTTP/1.1",
                "Host: gw",
                &auth,
                "Transfer-Encoding: chunked",
            ],
            body.as_bytes(),
        )
    };
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20 * 1024));
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "24 invalid chunk size",
            chunked("zz\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "25 chunk size overflowing u64",
            chunked("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "26 chunk data without its CRLF",
            chunked("5\r\nhelloXX0\r\n\r\n"),
            false,
        ),
        (
            "27 chunk extension over the limit",
            chunked(&long_ext),
            false,
        ),
        ("28 chunked body cut short", chunked("a\r\nhel"), true),
    ];
    for (name, bytes, half_close) in &cases {
        let a = expect_status_with(&h, name, bytes, &[400], *half_close, *half_close).await;
        if !a.closed_silently() {
            assert_refusal(name, &a, 400, "bad_request_body");
        }
    }
    let cut = req(
        &[
            "POST /upload HTTP/1.1",
            "Host: gw",
            &auth,
            "Content-Length: 100",
        ],
        b"only a few bytes",
    );
    let a = expect_status_with(&h, "29 CL body cut short", &cut, &[400], true, true).await;
    if !a.closed_silently() {
        assert_refusal("29", &a, 400, "bad_request_body");
    }
    let m = metrics(h.server.admin_addr).await;
    assert!(
        series(&m, "clawgate_upstream_errors_total")
            .values()
            .all(|v| *v == 0.0),
        "a client's broken body is not an upstream fault: {m}"
    );
}

#[tokio::test]
async fn one_chunk_declared_larger_than_the_body_limit_gets_413() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    // 0x40000000 = 1 GiB declared; 2 KiB sent (the limit is 1 KiB).
    let body = format!("40000000\r\n{}", "x".repeat(2048));
    let bytes = req(
        &[
            "POST /upload HTTP/1.1",
            "Host: gw",
            &auth,
            "Transfer-Encoding: chunked",
        ],
        body.as_bytes(),
    );
    let a = expect_status_with(&h, "30 huge chunk", &bytes, &[413], false, true).await;
    assert_refusal("30", &a, 413, "body_too_large");
}
