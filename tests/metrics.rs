//! The admin listener: exact Prometheus counts after a known mix of
//! requests, and the health endpoints.

mod common;

use std::collections::BTreeMap;

use common::*;

const ALICE: &str = "alice-token-0123456789";
const ALICE_OLD: &str = "alice-old-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const CAROL: &str = "carol-token-0123456789";

/// One request of the mix: expected status, path, headers.
type Step<'a> = (u16, String, Vec<(&'a str, String)>);

fn expected(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn requests_and_denials_are_counted_exactly_by_member_upstream_code_and_reason() {
    let prod = Upstream::start().await;
    let staging = Upstream::start().await;
    let alice_tokens = format!(
        "{} {}@2020-01-01T00:00:00Z",
        sha256_hex(ALICE),
        sha256_hex(ALICE_OLD)
    );
    let cfg = ConfigDir::new(
        &[("prod", prod.url()), ("staging", staging.url())],
        &[
            MemberSpec::new("alice", ALICE).set("TOKEN_SHA256", &alice_tokens),
            MemberSpec::new("bob", BOB).set("UPSTREAM", "staging"),
            MemberSpec::new("carol", CAROL).set("EGRESS_CIDRS", "10.0.0.0/8"),
        ],
    );
    let server = start(&cfg).await;
    let bearer = |t: &str| format!("Bearer {t}");

    let mut mix: Vec<Step> = Vec::new();
    for _ in 0..3 {
        mix.push((200, "/".into(), vec![("authorization", bearer(ALICE))]));
    }
    mix.push((
        500,
        "/status/500".into(),
        vec![("authorization", bearer(ALICE))],
    ));
    mix.push((200, "/".into(), vec![("x-clawgate-token", BOB.into())]));
    mix.push((401, "/".into(), vec![]));
    mix.push((401, "/".into(), vec![]));
    mix.push((401, "/".into(), vec![("authorization", bearer("nobody"))]));
    mix.push((401, "/".into(), vec![("authorization", bearer(ALICE_OLD))]));
    mix.push((
        403,
        "/".into(),
        vec![
            ("authorization", bearer(ALICE)),
            ("origin", "https://evil.example.net".into()),
        ],
    ));
    for _ in 0..2 {
        mix.push((403, "/".into(), vec![("authorization", bearer(CAROL))]));
    }
    for (status, path, headers) in &mix {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(server.addr, path, &h).await;
        assert_eq!(r.status, *status, "{path} {headers:?}");
    }

    let m = metrics(server.admin_addr).await;
    assert_eq!(
        series(&m, "clawgate_requests_total"),
        expected(&[
            (r#"{code="200",member="alice",upstream="prod"}"#, 3.0),
            (r#"{code="500",member="alice",upstream="prod"}"#, 1.0),
            (r#"{code="200",member="bob",upstream="staging"}"#, 1.0),
            (r#"{code="401",member="-",upstream="-"}"#, 3.0),
            (r#"{code="401",member="alice",upstream="-"}"#, 1.0),
            (r#"{code="403",member="alice",upstream="-"}"#, 1.0),
            (r#"{code="403",member="carol",upstream="-"}"#, 2.0),
        ]),
        "{m}"
    );
    assert_eq!(
        series(&m, "clawgate_denials_total"),
        expected(&[
            (r#"{member="-",reason="bad_token"}"#, 1.0),
            (r#"{member="-",reason="no_credentials"}"#, 2.0),
            (r#"{member="alice",reason="origin_not_allowed"}"#, 1.0),
            (r#"{member="alice",reason="token_expired"}"#, 1.0),
            (r#"{member="carol",reason="cidr_not_allowed"}"#, 2.0),
        ]),
        "{m}"
    );
    assert_eq!(
        series(&m, "clawgate_upstream_request_duration_seconds_count"),
        expected(&[
            (r#"{upstream="prod"}"#, 4.0),
            (r#"{upstream="staging"}"#, 1.0),
        ]),
    );
    assert_eq!((prod.count(), staging.count()), (4, 1));
}

#[tokio::test]
async fn metrics_are_served_only_on_the_admin_listener() {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    assert_ne!(server.addr, server.admin_addr);
    let r = get(server.admin_addr, "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    // On the member listener /metrics is an ordinary path: no credential, 401.
    let r = get(server.addr, "/metrics", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn healthz_answers_200() {
    let down = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{down}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let server = start(&cfg).await;
    // The process answers even when no upstream is reachable.
    let r = get(server.admin_addr, "/healthz", &[]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn readyz_answers_200_once_the_upstream_was_reached() {
    let down = closed_port();
    let cfg = ConfigDir::new(
        &[("prod", format!("http://{down}"))],
        &[MemberSpec::new("alice", ALICE)],
    );
    let server = start(&cfg).await;
    let r = get(server.admin_addr, "/readyz", &[]).await;
    assert_eq!(r.status, 503, "no upstream reached yet");

    let up = Upstream::start_on(&down.to_string()).await;
    let r = get(
        server.addr,
        "/",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(server.admin_addr, "/readyz", &[]).await;
    assert_eq!(r.status, 200);
    assert!(up.count() >= 1);
}

/// The harness never reads a missing series as 0: a check like "back to 0"
/// must fail when the metric is not there at all.
#[test]
#[should_panic(expected = "no sample clawgate_websockets_open{member=\"bob\"}")]
fn a_missing_series_is_not_read_as_zero() {
    let m = "clawgate_websockets_open{member=\"alice\"} 0\n";
    assert_eq!(
        try_sample(m, "clawgate_websockets_open{member=\"bob\"}"),
        None
    );
    assert_eq!(
        try_sample(m, "clawgate_websockets_open{member=\"alice\"}"),
        Some(0.0)
    );
    sample(m, "clawgate_websockets_open{member=\"bob\"}");
}
