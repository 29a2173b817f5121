//! Hostile `Origin` values: each is refused with a diff, or admitted only
//! after normalising.

use super::*;

/// One request as alice with this raw `Origin` value.
async fn with_origin(h: &Hostile, origin: &[u8]) -> Answer {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(
        format!(
            "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\nConnection: close\r\nOrigin: ",
            auth_line(ALICE)
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(origin);
    bytes.extend_from_slice(b"\r\n\r\n");
    send(h.server.addr, &bytes, false).await
}

#[tokio::test]
async fn hostile_origins_get_the_403_diff_or_pass_when_they_normalise() {
    let h = setup().await;
    let long = format!("https://{}.example.com", "a".repeat(10_000));
    // (case, Origin bytes, expected hint fragment; None = allowed)
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("42 null", b"null".to_vec(), Some("never be allowed")),
        (
            "43 userinfo",
            b"https://alice@alice.example.com".to_vec(),
            Some("userinfo"),
        ),
        (
            "44 raw IDN",
            "https://bücher.example".as_bytes().to_vec(),
            Some("punycode"),
        ),
        (
            "45 punycode, allowed",
            b"https://xn--bcher-kva.example".to_vec(),
            None,
        ),
        (
            "46 punycode, not allowed",
            b"https://xn--bcher-kva.example.net".to_vec(),
            Some("differs"),
        ),
        ("47 upper case", b"HTTPS://ALICE.EXAMPLE.COM".to_vec(), None),
        (
            "47 upper case, non-default port",
            b"HTTP://127.0.0.1:3000".to_vec(),
            None,
        ),
        (
            "48 default port spelled out",
            b"https://alice.example.com:443".to_vec(),
            None,
        ),
        (
            "49 non-default port",
            b"https://alice.example.com:8443".to_vec(),
            Some("port differs: presented 8443, allowed 443 (default)"),
        ),
        (
            "50 trailing dot",
            b"https://alice.example.com.".to_vec(),
            Some("differs"),
        ),
        ("51 10 000 bytes", long.into_bytes(), Some("longer than")),
        (
            "52 with a path",
            b"https://alice.example.com/app".to_vec(),
            Some("trailing path"),
        ),
        (
            "53 non-UTF-8 bytes",
            b"https://alice.\xff\xfe.example.com".to_vec(),
            Some("not valid UTF-8"),
        ),
        (
            "54 port 0",
            b"https://alice.example.com:0".to_vec(),
            Some("port differs"),
        ),
        (
            "54 port 65536",
            b"https://alice.example.com:65536".to_vec(),
            Some("out of range"),
        ),
        (
            "54 port letters",
            b"https://alice.example.com:https".to_vec(),
            Some("invalid port"),
        ),
        (
            "55 no scheme",
            b"alice.example.com".to_vec(),
            Some("expected scheme://host"),
        ),
        ("55 star", b"*".to_vec(), Some("expected scheme://host")),
        (
            "56 ws:// for http://",
            b"ws://127.0.0.1:3000".to_vec(),
            Some("scheme differs"),
        ),
    ];
    let mut allowed = 0;
    for (name, origin, hint) in &cases {
        let a = with_origin(&h, origin).await;
        let r = a.reply();
        match hint {
            None => {
                assert_eq!(r.status, 200, "{name}: {}", a.text());
                allowed += 1;
            }
            Some(hint) => {
                assert_refusal(name, &a, 403, "origin_not_allowed");
                let b = r.json();
                assert_eq!(b["member"], "alice", "{name}");
                let o = &b["origin"];
                assert!(
                    o["hint"].as_str().unwrap().contains(hint),
                    "{name}: hint {} lacks {hint:?}",
                    o["hint"]
                );
                assert!(o["allowed"].as_array().unwrap().len() == 4, "{name}");
                let shown = o["presented"].as_str().unwrap();
                assert!(shown.len() <= 260 * 4, "{name}: presented is bounded");
                assert!(!shown.chars().any(char::is_control), "{name}");
            }
        }
        still_serving(&h, name).await;
    }
    assert_eq!(h.up.count(), allowed + cases.len());
}
