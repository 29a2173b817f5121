//! Request bodies (sized and chunked) reach the gateway byte for byte,
//! a refusal while a body is still being sent reaches the client, and
//! `Expect: 100-continue` is answered by the gateway, not by clawgate.

use super::*;

#[tokio::test]
async fn request_bodies_arrive_with_exact_bytes_sized_or_chunked() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;

    // Sized: 100 000 binary bytes.
    let sized: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = c.exchange("POST", "/echo", "", &sized).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=1 body=100000");
    let seen = fake.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.header("content-length"), Some("100000"));
    assert_eq!(seen.header("transfer-encoding"), None);
    assert!(seen.raw_body == sized, "the sized body differs upstream");

    // Chunked by the client, in pieces, with an extension and a trailer.
    let parts: [&[u8]; 4] = [b"first,", &[0u8, 1, 2, 0xff, b'\r', b'\n'], b"", b"last"];
    let want: Vec<u8> = parts.concat();
    c.send(&raw_request(
        "POST",
        "/echo",
        "transfer-encoding: chunked\r\n",
        b"",
    ))
    .await;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        let mut piece = format!("{:x};ext=1\r\n", p.len()).into_bytes();
        piece.extend_from_slice(p);
        piece.extend_from_slice(b"\r\n");
        c.send(&piece).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    c.send(b"0\r\nx-trailer: t\r\n\r\n").await;
    let r = c.response("POST").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("conn=1 req=2 body={}", want.len()));
    let seen = fake.last();
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(seen.body.as_deref(), Ok(&want[..]));

    // An empty chunked body is still a valid chunked body.
    let r = c
        .exchange(
            "POST",
            "/echo",
            "transfer-encoding: chunked\r\n",
            b"0\r\n\r\n",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=3");
    let seen = fake.last();
    assert_eq!(seen.body.as_deref(), Ok(&b""[..]));

    // A large chunked body in one go (several frames on clawgate's side).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut wire = Vec::new();
    for piece in big.chunks(40_000) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let r = c
        .exchange("PUT", "/echo", "transfer-encoding: chunked\r\n", &wire)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "conn=1 req=4 body=300000");
    let seen = fake.last();
    assert!(
        seen.body.as_ref().is_ok_and(|b| *b == big),
        "the big body differs"
    );

    // All on one upstream connection: every body was framed exactly.
    let r = c.exchange("GET", "/plain", "", b"").await;
    assert_eq!(r.text(), "conn=1 req=5");
    assert_eq!(fake.conns(), 1);
}

#[tokio::test]
async fn an_early_refusal_while_the_body_is_still_being_sent_reaches_the_client() {
    let (fake, _cfg, server) = setup().await;
    // Far more than the socket buffers hold: the gateway answers long
    // before clawgate has written it all.
    let body = vec![b'x'; 8 * 1024 * 1024];
    let mut c = RawClient::connect(server.addr).await;
    c.send(&raw_request("POST", "/early-413", "", &body)).await;
    let r = c.response("POST").await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.text(), "too big");
    // And the proxy keeps serving.
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200);
    assert_eq!(fake.conns(), 2);
}

/// Send a 1 MiB body's head with `Expect: 100-continue`, as a client
/// does: the body only after a `100 Continue` (or a 1 s wait, as curl).
/// Returns the statuses of the heads received, the final one last.
async fn expect_continue(c: &mut RawClient, path: &str) -> (Vec<u16>, RawResp) {
    let body = vec![b'x'; 1024 * 1024];
    let head = raw_request(
        "POST",
        path,
        "expect: 100-continue\r\ncontent-length: 1048576\r\n",
        b"",
    );
    c.send(&head).await;
    let mut statuses = Vec::new();
    let got_head = timeout(Duration::from_secs(1), async {
        while find(&c.buf, b"\r\n\r\n").is_none() {
            if !c.fill().await {
                break;
            }
        }
    })
    .await
    .is_ok();
    if !got_head || c.buf.starts_with(b"HTTP/1.1 100 ") {
        if got_head {
            statuses.push(c.head().await.0);
        }
        // Sent as the client would; a proxy that already closed may refuse it.
        let _ = timeout(WAIT, c.s.write_all(&body)).await;
    }
    let r = c.response("POST").await;
    statuses.push(r.status);
    (statuses, r)
}

#[tokio::test]
async fn a_gateway_refusing_an_expect_100_continue_body_reaches_the_client_as_its_status() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let (statuses, r) = expect_continue(&mut c, "/expect-413").await;
    assert_eq!(
        statuses,
        [413],
        "the gateway's refusal, no 100 first: {}",
        r.text()
    );
    assert_eq!(r.text(), "refused early");
    assert_eq!(fake.last().header("expect"), Some("100-continue"));
    // The body was never read: the connection is not used again.
    assert!(!c.fill().await, "closed after the refusal");
    // And the proxy keeps serving.
    assert_eq!(alice_get(server.addr, "/plain").await.status, 200);
}

#[tokio::test]
async fn a_gateways_100_continue_is_what_invites_the_clients_body() {
    let (fake, _cfg, server) = setup().await;
    let mut c = RawClient::connect(server.addr).await;
    let started = std::time::Instant::now();
    let (statuses, r) = expect_continue(&mut c, "/expect-100").await;
    assert_eq!(statuses, [100, 200], "{}", r.text());
    assert_eq!(r.text(), "conn=1 req=1 body=1048576");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the 100 came with the gateway's, not after a wait: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.last().body.map(|b| b.len()), Ok(1024 * 1024));
}
