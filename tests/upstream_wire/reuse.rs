//! Upstream connection reuse: one pooled connection for sequential
//! requests, `connection: close`, pooled connections the gateway closed
//! (skipped, or the GET replayed), and a gateway's stray response staying
//! out of every other compartment's requests.

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

const BOB: &str = "bob-wire-token-0123456789";

/// clawgate with alice, bob and `/hooks/` public from loopback.
async fn setup_compartments() -> (Fake, ConfigDir, clawgate::runtime::server::Server) {
    let fake = Fake::start().await;
    let cfg = ConfigDir::new(
        &[("gw", fake.url())],
        &[MemberSpec::new("alice", ALICE), MemberSpec::new("bob", BOB)],
    );
    cfg.write_base(
        "[timeouts]\nupstream_response = \"4s\"\n\
         [[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.1/32\"]\n",
    );
    let server = start(&cfg).await;
    (fake, cfg, server)
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn a_stray_response_after_alices_answer_never_reaches_bob_nor_alice() {
    let (fake, _cfg, server) = setup_compartments().await;
    let r = alice_get(server.addr, "/stray").await;
    assert_eq!(text(&r), "conn=1 req=1");
    // At once, before the stray response is written: bob's request must
    // not ride alice's connection, where it would be answered by it.
    let bob = format!("Bearer {BOB}");
    let r = get(server.addr, "/plain", &[("authorization", &bob)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "conn=2 req=1", "bob got alice's connection");

    // Once the stray bytes sit on alice's idle connection, it is closed,
    // not handed to her next request.
    tokio::time::sleep(STRAY_AFTER * 2).await;
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "conn=3 req=1", "alice got the stray connection");
    // Bob's own connection was clean, and is still his.
    let r = get(server.addr, "/plain", &[("authorization", &bob)]).await;
    assert_eq!(text(&r), "conn=2 req=2");
    assert_eq!(fake.conns(), 3);
}

#[tokio::test]
async fn a_stray_response_on_a_public_route_never_reaches_a_member() {
    let (_fake, _cfg, server) = setup_compartments().await;
    let r = get(server.addr, "/hooks/stray", &[]).await;
    assert_eq!(text(&r), "conn=1 req=1");
    let r = alice_get(server.addr, "/plain").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        text(&r),
        "conn=2 req=1",
        "alice got the public route's connection"
    );
    // And the other way round: alice's stray stays out of the public
    // routes' requests (which may meet their own pool's: mixing stays
    // within one compartment).
    let r = alice_get(server.addr, "/stray").await;
    assert_eq!(text(&r), "conn=2 req=2");
    let r = get(server.addr, "/hooks/plain", &[]).await;
    assert!(!text(&r).contains("for=alice"), "{}", text(&r));
    assert!(!text(&r).starts_with("conn=2 "), "{}", text(&r));
}
