//! Request bodies (sized and chunked) reach the gateway byte for byte,
//! and a refusal while a body is still being sent reaches the client.

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
