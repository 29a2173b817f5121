//! Response framing: chunked with extensions and trailers, delimited by
//! close, HEAD, 204 and 304, interim 1xx, a head dribbled in pieces,
//! HTTP/1.0, and the bytes that ride along with a 101.

use super::*;

#[tokio::test]
async fn a_chunked_response_with_extensions_and_trailers_arrives_byte_for_byte() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/chunked", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), chunked_body().len());
    assert!(r.body == chunked_body(), "the body bytes differ");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // The trailers were consumed with the body: the connection is in step
    // and is used again.
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=2");
    assert_eq!(fake.conns(), 1);

    // Through hyper's client as well.
    let r = alice_get(server.addr, "/chunked").await;
    assert_eq!(r.status, 200);
    assert!(r.body == chunked_body(), "the body bytes differ");
}

#[tokio::test]
async fn a_response_delimited_by_close_arrives_whole_and_the_next_goes_on_a_new_connection() {
    let (fake, _cfg, server) = setup().await;
    let r = alice_get(server.addr, "/until-close").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), until_close_body().len());
    assert!(r.body == until_close_body(), "the body bytes differ");

    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=2 req=1");
    assert_eq!(fake.conns(), 2);

    // The same on one client connection, read raw.
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/until-close", "", b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body == until_close_body(), "the body bytes differ");
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    // The /until-close went on the pooled connection 2, which then ended.
    assert_eq!(r.text(), "conn=3 req=1");
    assert_eq!(fake.conns(), 3);
}

#[tokio::test]
async fn a_head_response_has_no_body_and_the_connections_stay_usable() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(&raw_request("HEAD", "/head", "", b"")).await;
    let r = c.response("HEAD").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(
        c.quiet_for(Duration::from_millis(300)).await,
        "no body bytes follow a HEAD response: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    // Keep-alive on both sides: clawgate did not wait for 5 body bytes.
    let r = timeout(Duration::from_secs(5), c.exchange("GET", "/plain", "", b""))
        .await
        .expect("the GET after a HEAD is answered");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=2");
    let r = c.exchange("GET", "/head", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(fake.conns(), 1);
    let seen = fake.seen();
    assert_eq!(seen[0].method, "HEAD");
}

#[tokio::test]
async fn a_head_response_keeps_the_gateways_framing_and_gets_no_made_up_length() {
    let (fake, _cfg, server) = setup().await;
    // (path, transfer-encoding, content-length) as the gateway sent them.
    let cases = [
        ("/head-chunked", Some("chunked"), None),
        ("/head-close", None, None),
        ("/head-1234", None, Some("1234")),
    ];
    let mut c = RawClient::connect(server.addr).await;
    for (path, te, length) in cases {
        c.send(&raw_request("HEAD", path, "", b"")).await;
        let r = c.response("HEAD").await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("transfer-encoding"), te, "{path}: {:?}", r.headers);
        assert_eq!(
            r.header("content-length"),
            length,
            "{path}: {:?}",
            r.headers
        );
        assert!(
            c.quiet_for(Duration::from_millis(100)).await,
            "{path}: no body bytes follow a HEAD response: {:?}",
            String::from_utf8_lossy(&c.buf)
        );
    }
    // The connections stay usable on both sides.
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(fake.conns(), 1);

    // h2 has no transfer coding: a length only where the gateway gave one.
    let mut h2 = h2c(server.addr).await;
    for (path, _, length) in cases {
        let req = http::Request::head(format!("http://gw{path}"))
            .header("authorization", bearer())
            .body(http_body_util::Empty::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let got = resp
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap());
        assert_eq!(got, length, "h2 {path}: {:?}", resp.headers());
        assert!(
            resp.headers().get("transfer-encoding").is_none(),
            "h2 {path}"
        );
    }
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body_and_reuse_the_connection() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/204", "", b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-status"), Some("204"));
    assert!(c.quiet_for(Duration::from_millis(200)).await);
    let r = c.exchange("GET", "/304", "", b"").await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(
        c.quiet_for(Duration::from_millis(200)).await,
        "no body bytes after a 304: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=3");
    assert_eq!(fake.conns(), 1, "one upstream connection for all three");

    // Two in a row through hyper's client (new client connections).
    for path in ["/204", "/304"] {
        let r = alice_get(server.addr, path).await;
        assert_eq!(r.status.to_string(), path[1..]);
        assert!(r.body.is_empty());
    }
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn interim_responses_are_skipped_and_the_final_one_is_forwarded() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/early-hints", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "after hints");
    let r = c.exchange("POST", "/continue", "", b"payload").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "after continue");
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.text(), "conn=1 req=3");
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn interim_responses_in_the_same_write_as_the_final_one_are_skipped() {
    let (_fake, _cfg, server) = setup().await;
    let r = alice_get(server.addr, "/interim-together").await;
    assert_eq!(
        r.status,
        200,
        "100 + 103 + 200 in one packet: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(&r.body[..], b"after both");
}

#[tokio::test]
async fn bytes_sent_with_the_101_head_reach_the_client_after_it() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(
        format!(
            "GET /ws HTTP/1.1\r\nhost: gw\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nx-clawgate-token: {ALICE}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let (status, headers) = c.head().await;
    assert_eq!(status, 101);
    assert_eq!(
        header(&headers, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    while c.buf.len() < 4 {
        assert!(c.fill().await, "closed after the 101 with {:?}", c.buf);
    }
    assert_eq!(
        c.buf,
        [0x81, 2, b'h', b'i'],
        "the frame that came with the 101"
    );

    // And the other way: a masked client frame reaches the gateway intact.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'y' ^ 1, b'o' ^ 2];
    c.send(&frame).await;
    let mut got = Vec::new();
    for _ in 0..250 {
        got = fake.log.tunnel_in.lock().unwrap().clone();
        if got.len() >= frame.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, frame);
    let seen = fake.last();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn a_response_head_dribbled_a_few_bytes_at_a_time_is_parsed() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.exchange("GET", "/dribble", "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-dribbled"), Some("yes"));
    assert_eq!(r.text(), "conn=1 req=1");
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.text(), "conn=1 req=2");
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn an_http_1_0_response_without_keep_alive_ends_its_connection() {
    let (fake, _cfg, server) = setup().await;
    for i in 1..=3 {
        let r = alice_get(server.addr, "/http10").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("conn={i} req=1"));
    }
    assert_eq!(fake.conns(), 3);
}
