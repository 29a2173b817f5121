//! Forged identity headers and hostile tokens: identity comes from the
//! credential alone.

use super::*;

#[tokio::test]
async fn forged_identity_headers_without_a_credential_get_401() {
    let h = setup().await;
    let a = expect_status(
        &h,
        "63 forged identity, no credential",
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                "X-Forwarded-User: alice",
                "X-Openclaw-Scopes: operator.admin",
                "X-Clawgate-Member: alice",
                "Forwarded: for=198.51.100.7;user=alice",
                "Connection: close",
            ],
            b"",
        ),
        &[401],
        false,
    )
    .await;
    assert_refusal("63", &a, 401, "no_credentials");
    assert_eq!(h.up.count(), 1, "only the still-serving probe");
}

#[tokio::test]
async fn forged_identity_in_duplicates_and_odd_case_never_beats_the_token() {
    let h = setup().await;
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                "x-FORWARDED-user: alice",
                &auth_line(BOB),
                "X-Forwarded-User: root",
                "X-OpenClaw-Scopes: operator.admin",
                "x-openclaw-scopes: operator.write",
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "64: {}", a.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert_eq!(
        headers["x-openclaw-scopes"],
        serde_json::json!(["operator.read"])
    );
}

#[tokio::test]
async fn bearer_of_one_member_and_header_token_of_another_pick_the_bearer_and_strip_both() {
    let h = setup().await;
    let a = send(
        h.server.addr,
        &req(
            &[
                "GET / HTTP/1.1",
                "Host: gw",
                &auth_line(BOB),
                &format!("X-Clawgate-Token: {ALICE}"),
                "Connection: close",
            ],
            b"",
        ),
        false,
    )
    .await;
    let r = a.reply();
    assert_eq!(r.status, 200, "65: {}", a.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert!(headers.get("authorization").is_none(), "{headers}");
    assert!(headers.get("x-clawgate-token").is_none(), "{headers}");
    let text = r.body;
    assert!(!text.contains(ALICE) && !text.contains(BOB), "token leaked");
}

// tokens

#[tokio::test]
async fn hostile_tokens_get_401_and_reveal_nothing() {
    let h = setup().await;
    let mut upper = ALICE.to_ascii_uppercase();
    upper.push('x');
    let plus = format!("{ALICE}x");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "66 inner space",
            format!("Authorization: Bearer {} {}", &ALICE[..10], &ALICE[10..]).into_bytes(),
            "bad_token",
        ),
        (
            "67 tab after the scheme",
            format!("Authorization: Bearer\t{ALICE}").into_bytes(),
            "no_credentials",
        ),
        (
            "68 unicode",
            "Authorization: Bearer alice-hostile-tökén"
                .as_bytes()
                .to_vec(),
            "bad_token",
        ),
        (
            "69 empty bearer",
            b"Authorization: Bearer ".to_vec(),
            "no_credentials",
        ),
        (
            "70 513 bytes",
            format!("Authorization: Bearer {}", "t".repeat(513)).into_bytes(),
            "bad_token",
        ),
        (
            "70 32 KiB",
            format!("Authorization: Bearer {}", "t".repeat(32 * 1024)).into_bytes(),
            "bad_token",
        ),
        (
            "71 prefix",
            format!("Authorization: Bearer {}", &ALICE[..ALICE.len() - 1]).into_bytes(),
            "bad_token",
        ),
        (
            "71 one byte more",
            format!("Authorization: Bearer {plus}").into_bytes(),
            "bad_token",
        ),
        (
            "71 case changed",
            format!("Authorization: Bearer {}", ALICE.to_ascii_uppercase()).into_bytes(),
            "bad_token",
        ),
        (
            "72 X-Clawgate-Token with an inner space",
            format!("X-Clawgate-Token: {} {}", &ALICE[..10], &ALICE[10..]).into_bytes(),
            "bad_token",
        ),
        (
            "72 X-Clawgate-Token unicode",
            "X-Clawgate-Token: ✓".as_bytes().to_vec(),
            "bad_token",
        ),
        (
            "other scheme",
            format!("Authorization: Basic {ALICE}").into_bytes(),
            "no_credentials",
        ),
    ];
    for (name, header, reason) in &cases {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(b"\r\n\r\n");
        let a = expect_status(&h, name, &bytes, &[401], false).await;
        assert_refusal(name, &a, 401, reason);
        let text = a.text();
        for secret in ["alice", "bob", "tökén", &upper[..12]] {
            assert!(!text.contains(secret), "{name}: 401 mentions {secret}");
        }
        assert!(a.reply().header("www-authenticate").is_some(), "{name}");
    }
    let nul = req(
        &[
            "GET / HTTP/1.1",
            "Host: gw",
            &format!("Authorization: Bearer {}\0{}", &ALICE[..5], &ALICE[5..]),
        ],
        b"",
    );
    expect_status(&h, "73 NUL in a token", &nul, &[400], false).await;
    let padded = req(
        &[
            "GET / HTTP/1.1",
            "Host: gw",
            &format!("Authorization: Bearer    {ALICE}   "),
            "Connection: close",
        ],
        b"",
    );
    let a = send(h.server.addr, &padded, false).await;
    assert_eq!(a.reply().status, 200, "74: {}", a.text());
    let m = metrics(h.server.admin_addr).await;
    assert!(
        !m.contains(ALICE) && !m.contains("tökén"),
        "tokens in metrics"
    );
}
