//! `X-Forwarded-For` from trusted and untrusted peers: refused when
//! malformed, overwritten when not trusted.

use super::*;

#[tokio::test]
async fn malformed_forwarded_for_from_a_trusted_peer_gets_400() {
    let h = setup_with(TRUSTED_LOOPBACK).await;
    let hops = vec!["198.51.100.7"; 65].join(", ");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("58 65 hops", hops.into_bytes()),
        ("59 obs-text", b"198.51.100.\xe9".to_vec()),
        ("59 IPv6 zone ID", b"fe80::1%eth0".to_vec()),
        ("59 port out of range", b"198.51.100.7:99999".to_vec()),
        ("59 CIDR instead of an address", b"198.51.100.0/24".to_vec()),
    ];
    for (name, xff) in &cases {
        let mut bytes = format!(
            "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\nConnection: close\r\nX-Forwarded-For: ",
            auth_line(ALICE)
        )
        .into_bytes();
        bytes.extend_from_slice(xff);
        bytes.extend_from_slice(b"\r\n\r\n");
        let a = expect_status(&h, name, &bytes, &[400], false).await;
        assert_refusal(name, &a, 400, "bad_x_forwarded_for");
    }
    assert_eq!(h.up.count(), cases.len(), "only the still-serving probes");
}

#[tokio::test]
async fn forwarded_for_of_only_separators_from_a_trusted_peer_means_the_peer() {
    let h = setup_with(TRUSTED_LOOPBACK).await;
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "X-Forwarded-For: , ,,",
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "60: {}", a.text());
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
}

#[tokio::test]
async fn forwarded_for_garbage_from_an_untrusted_peer_is_ignored_and_overwritten() {
    let h = setup().await;
    let mut bytes = format!(
        "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\nConnection: close\r\n",
        auth_line(ALICE)
    )
    .into_bytes();
    bytes.extend_from_slice(b"X-Forwarded-For: not-an-ip, \xe9\xe9, 999.1.1.1\r\n");
    bytes.extend_from_slice(b"X-Forwarded-For: 10.0.0.1\r\n\r\n");
    let a = send(h.server.addr, &bytes, false).await;
    let r = a.reply();
    assert_eq!(r.status, 200, "61: {}", a.text());
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
    still_serving(&h, "61").await;
}
