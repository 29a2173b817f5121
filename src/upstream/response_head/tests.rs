use super::*;
use http::HeaderMap;

fn parse(raw: &str, method: Method) -> Result<Option<ResponseHead>, HeadError> {
    let mut buf = BytesMut::from(raw);
    parse_response(&mut buf, &method)
}

#[test]
fn a_length_delimited_response_leaves_its_body_in_the_buffer() {
    let mut buf = BytesMut::from(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-Seen: a\r\n\r\nok",
    );
    let head = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.framing, Framing::Length(2));
    assert!(head.keep_alive);
    assert_eq!(&buf[..], b"ok");
    assert_eq!(
        &head.fields.lines[..],
        b"Content-Length: 2\r\nX-Seen: a\r\n",
        "a plain keep-alive is this hop's"
    );
    assert_eq!(head.fields.content_length, Some(2));
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    let f = |raw: &str, m: Method| parse(raw, m).unwrap().unwrap().framing;
    assert_eq!(
        f("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD),
        Framing::Empty
    );
    assert_eq!(f("HTTP/1.1 204 No\r\n\r\n", Method::GET), Framing::Empty);
    assert_eq!(f("HTTP/1.1 304 NM\r\n\r\n", Method::GET), Framing::Empty);
    assert_eq!(
        f("HTTP/1.1 100 Continue\r\n\r\n", Method::GET),
        Framing::Empty
    );
    assert_eq!(
        f("HTTP/1.1 101 SP\r\nupgrade: websocket\r\n\r\n", Method::GET),
        Framing::Upgrade
    );
    assert_eq!(
        f("HTTP/1.1 200 OK\r\n\r\n", Method::GET),
        Framing::UntilClose
    );
    assert_eq!(
        f(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Method::GET
        ),
        Framing::Chunked
    );
    assert_eq!(
        f(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            Method::GET
        ),
        Framing::UntilClose
    );
    let h = parse(
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    assert!(h.fields.lines.is_empty(), "no length, no transfer coding");
    assert_eq!(h.fields.content_length, None);
    // To a HEAD, the framing a GET would get is passed on as it is.
    let h = parse(
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::HEAD,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Empty);
    assert_eq!(&h.fields.lines[..], b"Transfer-Encoding: chunked\r\n");
    assert_eq!(h.fields.content_length, None);
}

#[test]
fn keep_alive_is_decided_by_version_and_connection() {
    let ka = |raw: &str| parse(raw, Method::GET).unwrap().unwrap().keep_alive;
    assert!(!ka(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    ));
    assert!(!ka("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
    assert!(ka(
        "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
    ));
    assert!(!ka("HTTP/1.1 200 OK\r\n\r\n"), "read-until-close");
    let h = parse(
        "HTTP/1.1 200 OK\r\nconnection: x-hop\r\nx-hop: 1\r\ncontent-length: 0\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        &h.fields.lines[..],
        b"content-length: 0\r\n",
        "Connection and the field it names are this hop's"
    );
}

#[test]
fn hop_by_hop_fields_stay_and_a_101_keeps_its_upgrade() {
    let h = parse(
        "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x\r\n\
         Proxy-Connection: x\r\nUpgrade: h2c\r\nContent-Type: text/event-stream\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 GMT\r\ntransfer-encoding: chunked\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        &h.fields.lines[..],
        &b"Content-Type: text/event-stream\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n"[..]
    );
    assert!(h.fields.event_stream && h.fields.has_date);
    let h = parse(
        "HTTP/1.1 101 SP\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: k\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        &h.fields.lines[..],
        &b"Upgrade: websocket\r\nSec-WebSocket-Accept: k\r\nconnection: upgrade\r\n"[..]
    );
    let mut map = HeaderMap::new();
    h.fields.append_to(&mut map);
    assert_eq!(map["upgrade"], "websocket");
    assert_eq!(map["sec-websocket-accept"], "k");
    assert_eq!(map["connection"], "upgrade");
}

#[test]
fn the_gateways_request_id_gives_way_to_ours() {
    let mut h = parse(
        "HTTP/1.1 200 OK\r\nX-Request-Id: theirs\r\nX-Up: 1\r\ncontent-length: 0\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        &h.fields.lines[..],
        &b"X-Up: 1\r\ncontent-length: 0\r\n"[..]
    );
    h.fields.request_id = Some(crate::request_id::RequestId::from_static("ours"));
    let mut map = HeaderMap::new();
    h.fields.append_to(&mut map);
    let ids: Vec<_> = map.get_all("x-request-id").iter().collect();
    assert_eq!(ids, ["ours"]);
}

#[test]
fn the_gateways_session_cookie_is_dropped_and_others_pass() {
    let h = parse(
        "HTTP/1.1 200 OK\r\nSet-Cookie: theme=dark\r\n\
         set-cookie: clawgate_session=forged; Path=/chat\r\n\
         Set-Cookie: lang=en; Path=/\r\ncontent-length: 0\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        &h.fields.lines[..],
        &b"Set-Cookie: theme=dark\r\nSet-Cookie: lang=en; Path=/\r\ncontent-length: 0\r\n"[..]
    );
}

#[test]
fn bad_heads_are_refused() {
    assert!(parse("HTTP/1.1 200 OK\r\n", Method::GET).unwrap().is_none());
    assert_eq!(
        parse(
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            Method::GET
        )
        .unwrap_err(),
        HeadError::BadLength
    );
    assert_eq!(
        parse("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", Method::GET).unwrap_err(),
        HeadError::BadLength
    );
    assert!(parse(
        "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n",
        Method::GET
    )
    .unwrap()
    .is_some());
    assert_eq!(
        parse("SSH-2.0-OpenSSH\r\n\r\n", Method::GET).unwrap_err(),
        HeadError::Malformed
    );
    let many: String = (0..150).map(|i| format!("x-{i}: v\r\n")).collect();
    assert_eq!(
        parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), Method::GET).unwrap_err(),
        HeadError::TooLarge
    );
    let huge = "HTTP/1.1 200 OK\r\nx-big: ".to_string() + &"a".repeat(MAX_HEAD_BYTES + 1);
    assert_eq!(parse(&huge, Method::GET).unwrap_err(), HeadError::TooLarge);
}
