//! When the gateway is down or slow the member gets a 502/504 carrying the
//! request ID, the failure is counted, and service resumes on its own once
//! the gateway is back.

mod common;

use common::*;

const ALICE: &str = "alice-token-0123456789";

fn auth() -> String {
    format!("Bearer {ALICE}")
}

#[tokio::test]
async fn upstream_down_gives_502_with_the_request_id() {
    let down = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{down}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let server = start(&cfg).await;
    let r = get(server.addr, "/", &[("authorization", &auth())]).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["reason"], "upstream_connect");
    assert_eq!(b["request_id"], r.request_id());
    assert!(is_uuid_v7(r.request_id()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["status"], 502);
    assert_eq!(line["member"], "alice");
    assert_eq!(line["upstream"], "prod");
}

#[tokio::test]
async fn upstream_down_is_counted_as_a_connect_error() {
    let down = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{down}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let server = start(&cfg).await;
    for _ in 0..2 {
        let r = get(server.addr, "/", &[("authorization", &auth())]).await;
        assert_eq!(r.status, 502);
    }
    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            r#"clawgate_upstream_errors_total{kind="connect",upstream="prod"}"#
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"clawgate_requests_total{code="502",member="alice",upstream="prod"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn upstream_slower_than_upstream_response_gives_504() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    cfg.write_base("[timeouts]\nupstream_response = \"1s\"\n");
    let server = start(&cfg).await;
    let r = get(server.addr, "/slow", &[("authorization", &auth())]).await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["reason"], "upstream_timeout");
    assert_eq!(b["request_id"], r.request_id());
    assert_eq!(up.count(), 1, "the request did reach the upstream");
    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            r#"clawgate_upstream_errors_total{kind="timeout",upstream="prod"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn requests_succeed_again_once_the_upstream_is_back_on_the_same_port() {
    let down = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{down}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let server = start(&cfg).await;
    let r = get(server.addr, "/", &[("authorization", &auth())]).await;
    assert_eq!(r.status, 502);

    let up = Upstream::start_on(&down.to_string()).await;
    let r = get(server.addr, "/back", &[("authorization", &auth())]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["path"], "/back");
    assert_eq!(up.count(), 1);
}
