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
