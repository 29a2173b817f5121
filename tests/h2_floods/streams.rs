//! Stream floods through a real h2 client: streams cancelled at the
//! gateway, the rapid reset, more concurrent streams than allowed.

use super::*;

/// Streams cancelled once their request has reached the gateway (the
/// gateway holds `/slow` for 3 s, so none is answered first): the shape the
/// shedding rule is for, made deterministic by waiting for each request to
/// arrive before cancelling it.
#[tokio::test]
async fn streams_cancelled_at_the_gateway_get_the_connection_shed() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let mut send = h2c(server.addr).await;

    const STREAMS: usize = 1_000;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while sent < STREAMS && Instant::now() < deadline {
        // The server ends the connection with GOAWAY: the loop stops here.
        if tokio::time::timeout(WAIT, send.ready())
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
        let before = up.count();
        let pending = send.send_request(request(&format!("/slow?i={sent}")));
        tokio::pin!(pending);
        // Drive the request until the gateway has it (bounded), then drop
        // it: hyper's client sends RST_STREAM(CANCEL).
        let arrived = Instant::now() + Duration::from_secs(2);
        while up.count() == before && Instant::now() < arrived {
            if tokio::time::timeout(Duration::from_millis(1), &mut pending)
                .await
                .is_ok()
            {
                break; // refused or connection gone: not a cancel
            }
        }
        sent += 1;
    }
    still_serving(&server, "cancelled streams").await;
    let seen = up.count();
    eprintln!("cancel at gateway: {sent} streams sent, {seen} reached the gateway");
    // Past 100 cancels, every one of its requests so far, the connection
    // is shut down (GOAWAY); without the rule all 1,000 went through, each
    // a gateway request on a gateway connection of its own.
    assert!(
        sent > CANCELS && sent < 3 * CANCELS,
        "the flooding connection was shed after {sent} cancelled streams"
    );
    let m = metrics(server.admin_addr).await;
    assert!(
        m.contains("clawgate_connections_open"),
        "metrics still served"
    );
}

/// The classic rapid reset: HEADERS and RST_STREAM back to back, as fast
/// as the client can write them. Whether the reset reaches the stream
/// before or after the proxy accepted it, the connection is closed long
/// before 2,000 streams and few become gateway requests.
#[tokio::test]
async fn rapid_reset_streams_leave_the_proxy_serving() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp)
        .await
        .expect("h2c prior knowledge is spoken");
    let conn = tokio::spawn(conn);

    const STREAMS: usize = 2_000;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    let mut client = client;
    while sent < STREAMS && Instant::now() < deadline {
        client = match tokio::time::timeout(WAIT, client.ready()).await {
            Ok(Ok(ready)) => ready,
            _ => break, // GOAWAY or closed: the server ended the flood
        };
        let req = http::Request::builder()
            .uri(format!("http://gw.test/reset/{sent}"))
            .header("authorization", format!("Bearer {ALICE}"))
            .body(())
            .unwrap();
        let Ok((response, mut stream)) = client.send_request(req, true) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        drop(response);
        sent += 1;
        if sent % 64 == 0 {
            // Let the connection task flush and read the server's frames.
            tokio::task::yield_now().await;
        }
    }
    // The connection task ends once the server has closed it.
    let closed = tokio::time::timeout(WAIT, conn).await.is_ok();
    still_serving(&server, "rapid reset").await;
    let seen = up.count();
    eprintln!("rapid reset: {sent} streams sent, {seen} reached the gateway");
    assert!(
        closed,
        "the flooding connection was not closed ({sent} streams)"
    );
    assert!(
        seen < 600,
        "{seen} gateway requests for {sent} cancelled streams"
    );
}

#[tokio::test]
async fn more_concurrent_streams_than_allowed_are_queued_not_served_at_once() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let send = h2c(server.addr).await;

    // 1,000 requests at once on one connection (the server allows 256
    // concurrent streams): all answered, none refused by the proxy.
    let mut tasks = Vec::new();
    for i in 0..1_000 {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            send.ready().await.ok()?;
            let resp = send
                .send_request(request(&format!("/many/{i}")))
                .await
                .ok()?;
            Some(resp.status().as_u16())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(Some(200))) = tokio::time::timeout(Duration::from_secs(30), t).await {
            ok += 1;
        }
    }
    assert_eq!(ok, 1_000, "every queued stream answered 200");
    assert_eq!(up.count(), 1_000);
    still_serving(&server, "1,000 concurrent streams").await;
}
