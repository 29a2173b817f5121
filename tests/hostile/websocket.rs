//! Malformed and unauthorised WebSocket upgrades, and `Upgrade: h2c`:
//! answered, never hung, never smuggled.

use super::*;

/// Send an upgrade request and read until the response head is complete
/// (the connection may stay open as a tunnel). Panics on a hang.
async fn upgrade_head(addr: SocketAddr, bytes: &[u8]) -> (RawReply, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, read_until_head_end(&mut s, &mut out))
        .await
        .expect("an upgrade is answered within 10s");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(!text.is_empty(), "closed without an answer");
    (RawReply::parse(&text), s)
}

/// Case `case`: the upgrade `lines` + `body` is answered, with a 101 or
/// a 4xx (the test gateway decides which), and the proxy keeps serving.
async fn answered_and_serving(h: &Hostile, case: &str, lines: &[&str], body: &[u8]) {
    let (r, s) = upgrade_head(h.server.addr, &req(lines, body)).await;
    assert!(
        r.status == 101 || (400..500).contains(&r.status),
        "{case}: {}",
        r.status
    );
    drop(s);
    still_serving(h, case).await;
}

const WS_KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

#[tokio::test]
async fn invalid_websocket_upgrades_are_answered_and_never_hang() {
    let h = setup().await;
    let auth = auth_line(ALICE);
    let upgrade = ["Connection: Upgrade", "Upgrade: websocket"];

    let (r, _) = upgrade_head(
        h.server.addr,
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                &auth,
                upgrade[0],
                upgrade[1],
                "Sec-WebSocket-Version: 13",
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 400, "76: the upstream's own refusal");
    assert!(is_uuid_v7(r.header("x-request-id").unwrap()));
    still_serving(&h, "76").await;

    // The test gateway does not check the version; whatever it answers,
    // the exchange ends and the proxy keeps serving.
    answered_and_serving(
        &h,
        "77",
        &[
            "GET /ws HTTP/1.1",
            "Host: gw",
            &auth,
            upgrade[0],
            upgrade[1],
            WS_KEY,
            "Sec-WebSocket-Version: 8",
        ],
        b"",
    )
    .await;

    answered_and_serving(
        &h,
        "78",
        &[
            "POST /ws HTTP/1.1",
            "Host: gw",
            &auth,
            upgrade[0],
            upgrade[1],
            WS_KEY,
            "Sec-WebSocket-Version: 13",
            "Content-Length: 5",
        ],
        b"hello",
    )
    .await;
    wait_for_no_websockets(&h).await;
}

async fn wait_for_no_websockets(h: &Hostile) {
    for _ in 0..100 {
        let m = metrics(h.server.admin_addr).await;
        if series(&m, "clawgate_websockets_open")
            .values()
            .all(|v| *v == 0.0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tunnels left open after their clients went away");
}

#[tokio::test]
async fn a_101_to_a_request_that_did_not_ask_for_an_upgrade_gets_502() {
    let h = setup().await;
    // Upgrade without `Connection: upgrade` is not an upgrade request: the
    // header is dropped, and the gateway's 101 is refused.
    let a = expect_status(
        &h,
        "79",
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "Upgrade: websocket",
                WS_KEY,
                "Connection: close",
            ],
            b"",
        ),
        &[502],
        false,
    )
    .await;
    assert_refusal("79", &a, 502, "upstream_reset");
    let m = metrics(h.server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            r#"clawgate_upstream_errors_total{kind="unrequested_upgrade",upstream="prod"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn h2c_upgrade_is_ignored_and_the_upstream_never_sees_it() {
    let h = setup().await;
    // RFC 9110 §7.8 lets a server ignore Upgrade; tunnelling h2c would let
    // the client speak HTTP/2 to the gateway past clawgate's checks.
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET /plain HTTP/1.1",
                "Host: gw",
                &auth_line(ALICE),
                "Connection: Upgrade, HTTP2-Settings, close",
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "80: {}", a.text());
    let headers = &r.json()["headers"];
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(
            headers.get(gone).is_none(),
            "80: {gone} went upstream: {headers}"
        );
    }
    still_serving(&h, "80").await;
}

#[tokio::test]
async fn websocket_upgrade_without_credentials_gets_401() {
    let h = setup().await;
    let (r, _) = upgrade_head(
        h.server.addr,
        &req(
            &[
                "GET /ws HTTP/1.1",
                "Host: gw",
                "Connection: Upgrade",
                "Upgrade: websocket",
                WS_KEY,
                "Sec-WebSocket-Version: 13",
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 401, "81");
    assert_eq!(h.up.count(), 0);
    still_serving(&h, "81").await;
}
