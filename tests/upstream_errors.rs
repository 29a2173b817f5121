//! When the gateway is down or slow the member gets a 502/504 carrying the
//! request ID, the failure is counted, and service resumes on its own once
//! the gateway is back.

mod common;

use std::time::Duration;

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
    assert_eq!(b["reason"], "upstream_connect_refused");
    assert_eq!(b["upstream"], "prod");
    assert_eq!(b["address"], down.to_string());
    assert_eq!(b["request_id"], r.request_id());
    assert!(is_uuid_v7(r.request_id()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["status"], 502);
    assert_eq!(line["member"], "alice");
    assert_eq!(line["upstream"], "prod");
    assert_eq!(line["reason"], "upstream_connect_refused");
    assert_eq!(line["upstream_addr"], down.to_string());
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
            r#"clawgate_upstream_errors_total{kind="connect_refused",upstream="prod"}"#
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
    assert_eq!(b["reason"], "upstream_response_timeout");
    assert_eq!(b["request_id"], r.request_id());
    assert_eq!(up.count(), 1, "the request did reach the upstream");
    let m = metrics(server.admin_addr).await;
    assert_eq!(
        sample(
            &m,
            r#"clawgate_upstream_errors_total{kind="response_timeout",upstream="prod"}"#
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

#[tokio::test]
async fn a_failing_gateway_is_said_once_on_stderr_and_so_is_its_recovery() {
    let port = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{port}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let p = Proc::start(&cfg);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = get(p.addr, "/", &[("authorization", &auth())]).await;
        assert_eq!(r.status, 502);
        ids.push(r.request_id().to_string());
    }
    let line = p.wait_log("gateway failing", Duration::from_secs(5));
    assert!(
        line.contains("upstream=\"prod\"") || line.contains("upstream=prod"),
        "{line}"
    );
    assert!(line.contains(&port.to_string()), "{line}");
    assert!(line.contains("connect_refused"), "{line}");
    assert!(line.contains(&ids[0]), "{line}");
    let _up = Upstream::start_on(&port.to_string()).await;
    assert_eq!(
        get(p.addr, "/", &[("authorization", &auth())]).await.status,
        200
    );
    let back = p.wait_log("gateway answering again", Duration::from_secs(5));
    assert!(back.contains("failures=3"), "{back}");
    // Once, not per failure: no second "failing" line came before it.
    let rest: Vec<String> = p.stderr.try_iter().collect();
    assert!(
        !rest.iter().any(|l| l.contains("gateway failing")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn a_public_routes_502_does_not_tell_a_stranger_where_the_gateway_lives() {
    let down = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{down}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    cfg.write_base(
        "[[public]]\npath_prefix = \"/hooks/\"\nsource_cidrs = [\"127.0.0.0/8\"]\nupstream = \"prod\"\n",
    );
    let server = start(&cfg).await;
    let r = get(server.addr, "/hooks/x", &[]).await;
    assert_eq!(r.status, 502);
    let b = r.json();
    assert_eq!(b["reason"], "upstream_connect_refused");
    assert_eq!(b["upstream"], "prod");
    assert!(b.get("address").is_none(), "{b}");
    assert!(!String::from_utf8_lossy(&r.body).contains(&down.port().to_string()));
    // The operator's log still has it.
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["upstream_addr"], down.to_string());
}
