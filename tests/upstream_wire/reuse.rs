//! Upstream connection reuse: one pooled connection for sequential
//! requests, `connection: close`, and pooled connections the gateway
//! closed (skipped, or the GET replayed).

use super::*;

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let (fake, _cfg, server) = setup().await;
    for i in 1..=20 {
        let r = alice_get(server.addr, "/plain").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("conn=1 req={i}"));
    }
    assert_eq!(fake.conns(), 1);
    assert_eq!(fake.seen().len(), 20);
}

#[tokio::test]
async fn connection_close_gives_one_upstream_connection_per_request() {
    let (fake, _cfg, server) = setup().await;
    for i in 1..=20 {
        let r = alice_get(server.addr, "/close").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, format!("conn={i} req=1"));
        assert!(
            r.header("connection").is_none_or(|v| !v.contains("close")),
            "the gateway's connection: close is this hop's"
        );
    }
    assert_eq!(fake.conns(), 20);
}

#[tokio::test]
async fn a_pooled_connection_the_gateway_closed_is_not_used() {
    let (fake, _cfg, server) = setup().await;
    // Closed right after the answer, the next request at once.
    let r = alice_get(server.addr, "/then-close").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"conn=1 req=1");
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=2 req=1");
    assert_eq!(fake.conns(), 2);

    // Closed a while before the next request, which has a body (not
    // replayable): the dead connection must be noticed before use.
    let r = alice_get(server.addr, "/then-close").await;
    assert_eq!(&r.body[..], b"conn=2 req=2");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = request(
        server.addr,
        "POST",
        "/echo",
        &[("authorization", &bearer())],
        "payload",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=3 req=1 body=7");
    assert_eq!(fake.conns(), 3);
}

#[tokio::test]
async fn a_get_written_as_the_gateway_closes_its_idle_connection_is_replayed() {
    let (fake, cfg, server) = setup().await;
    let r = alice_get(server.addr, "/then-close-late").await;
    assert_eq!(&r.body[..], b"conn=1 req=1");
    // Sent on the pooled connection, which the gateway closes without
    // answering: sent again on a new one.
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"conn=2 req=1");
    assert_eq!(fake.conns(), 2);
    let abandoned = String::from_utf8_lossy(&fake.log.abandoned.lock().unwrap()).into_owned();
    assert!(
        abandoned.starts_with("GET /plain HTTP/1.1\r\n"),
        "the first attempt went on the closing connection: {abandoned:?}"
    );
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["status"], 200);
}
