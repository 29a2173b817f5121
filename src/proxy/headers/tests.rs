use super::*;
use crate::test_support::upstream;
use clawgate_policy::testing::member;
use http::HeaderMap;

fn via() -> Via {
    Via::Cert {
        sha256_hex: "".into(),
    }
}

fn fwd<'a>(rid: &'a RequestId, trusted: bool) -> Forwarding<'a> {
    Forwarding {
        client_ip: HeaderValue::from_static("198.51.100.7"),
        proto: HeaderValue::from_static("https"),
        host: Some(b"gw.example.com"),
        request_id: rid,
        peer_trusted: trusted,
        upgrade: None,
        websocket_key: None,
        session_cookie: "clawgate_session",
    }
}

/// The head clawgate writes for `h`, parsed back into a map.
fn prepare_request(h: &mut HeaderMap, up: &Upstream, caller: &Caller<'_>, f: &Forwarding<'_>) {
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        &http::Method::GET,
        "/x?y=1",
        &Fields::from_header_map(h),
        up,
        caller,
        f,
        false,
    );
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    let len = req.parse(&out).unwrap().unwrap();
    assert_eq!(len, out.len(), "one complete head");
    assert_eq!(req.method, Some("GET"));
    assert_eq!(req.path, Some("/x?y=1"));
    let mut parsed = HeaderMap::new();
    for hd in req.headers.iter() {
        parsed.append(
            HeaderName::from_bytes(hd.name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(hd.value).unwrap(),
        );
    }
    *h = parsed;
}

fn hostile() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer secret"),
        ("x-clawgate-token", "secret"),
        ("x-forwarded-user", "root"),
        ("x-openclaw-scopes", "operator.admin"),
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-host", "evil"),
        ("x-forwarded-port", "1"),
        ("forwarded", "for=1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
        ("x-request-id", "forged"),
        ("x-clawgate-member", "root"),
        ("connection", "keep-alive, x-secret-hop"),
        ("x-secret-hop", "1"),
        ("te", "trailers"),
        ("cookie", "a=1; clawgate_session=abc; b=2"),
        ("host", "gw.example.com"),
        ("accept", "*/*"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn member_requests_lose_credentials_and_forgeries() {
    let m = member("alice");
    let up = upstream("prod", "127.0.0.1:18789");
    let rid = RequestId::from_static("rid-1");
    let mut h = hostile();
    prepare_request(
        &mut h,
        &up,
        &Caller::Member {
            member: &m,
            via: &via(),
        },
        &fwd(&rid, false),
    );
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-openclaw-scopes"], "");
    assert_eq!(h["x-forwarded-for"], "198.51.100.7");
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "gw.example.com");
    assert_eq!(h["host"], "127.0.0.1:18789");
    assert_eq!(h["x-request-id"], "rid-1");
    assert_eq!(h["cookie"], "a=1; b=2");
    assert_eq!(h["accept"], "*/*");
    for gone in [
        "authorization",
        "x-clawgate-token",
        "x-forwarded-port",
        "forwarded",
        "x-real-ip",
        "x-clawgate-member",
        "connection",
        "x-secret-hop",
        "te",
    ] {
        assert!(h.get(gone).is_none(), "{gone} leaked");
    }
}

#[test]
fn public_routes_keep_their_own_authorization_but_get_no_identity() {
    let up = upstream("prod", "127.0.0.1:18789");
    let rid = RequestId::from_static("rid-1");
    let mut h = hostile();
    prepare_request(
        &mut h,
        &up,
        &Caller::Public { prefix: "/hooks/" },
        &fwd(&rid, false),
    );
    assert_eq!(h["authorization"], "Bearer secret");
    assert!(h.get("x-forwarded-user").is_none());
    assert!(h.get("x-openclaw-scopes").is_none());
    assert!(h.get("x-clawgate-token").is_none());
}

#[test]
fn trusted_peer_keeps_its_proto_and_host() {
    let m = member("alice");
    let up = upstream("prod", "127.0.0.1:18789");
    let rid = RequestId::from_static("rid-1");
    let mut h = hostile();
    prepare_request(
        &mut h,
        &up,
        &Caller::Member {
            member: &m,
            via: &via(),
        },
        &fwd(&rid, true),
    );
    assert_eq!(h["x-forwarded-proto"], "gopher");
    assert_eq!(h["x-forwarded-host"], "evil");
    assert_eq!(h["x-forwarded-user"], "alice");
}

#[test]
fn hosts_are_names_or_ip_literals_with_an_optional_port() {
    for ok in [
        "gw.example.com",
        "127.0.0.1:19010",
        "[::1]:443",
        "[2001:db8::1]",
        "a-b_c~d%20.x",
    ] {
        assert!(valid_host(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "",
        "a b",
        "user@host",
        "host/path",
        "h:123456",
        "h:8o",
        "[]",
        "[zz]:1",
        "a:b:80",
        "gw\x7f",
        "caf\u{e9}",
    ] {
        assert!(!valid_host(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn upgrade_survives_only_when_requested() {
    let mut h = HeaderMap::new();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    let f = Fields::from_header_map(&h);
    assert_eq!(upgrade_requested(&f), Some(&b"websocket"[..]));
    h.insert("connection", HeaderValue::from_static("keep-alive"));
    assert!(upgrade_requested(&Fields::from_header_map(&h)).is_none());
}

#[test]
fn cookie_fields_travel_as_one_line_without_the_session_cookie() {
    let m = member("alice");
    let up = upstream("prod", "127.0.0.1:18789");
    let rid = RequestId::from_static("rid-1");
    let caller = Caller::Member {
        member: &m,
        via: &via(),
    };
    // HTTP/2 clients send one field per cookie (RFC 9113 §8.2.3).
    let mut h = HeaderMap::new();
    for v in ["a=1", "clawgate_session=abc", "b=2"] {
        h.append("cookie", HeaderValue::from_static(v));
    }
    prepare_request(&mut h, &up, &caller, &fwd(&rid, false));
    assert_eq!(h.get_all("cookie").iter().count(), 1);
    assert_eq!(h["cookie"], "a=1; b=2");
    // Only clawgate's cookie: no Cookie line at all.
    let mut h = HeaderMap::new();
    h.append("cookie", HeaderValue::from_static("clawgate_session=abc"));
    prepare_request(&mut h, &up, &caller, &fwd(&rid, false));
    assert!(h.get("cookie").is_none());
    // A single field without it passes untouched.
    let mut h = HeaderMap::new();
    h.append("cookie", HeaderValue::from_static("x=1;y=2"));
    prepare_request(&mut h, &up, &caller, &fwd(&rid, false));
    assert_eq!(h["cookie"], "x=1;y=2");
}
