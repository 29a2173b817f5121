//! Client certificates that must be refused (unknown CA, expired, not yet
//! valid, wrong usage) and non-TLS bytes on the TLS port.

use super::*;

async fn tls_setup(client_auth: &str) -> (Pki, Hostile) {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &members(),
        &pki.listen_mtls(client_auth),
    );
    cfg.write_base(LIMITS);
    let server = start(&cfg).await;
    (
        pki,
        Hostile {
            up,
            _cfg: cfg,
            server,
        },
    )
}

/// A member request over TLS (alice's token; `cert` when required).
async fn tls_still_serving(pki: &Pki, h: &Hostile, cert: Option<&ClientCert>, after: &str) {
    let r = https_get(
        h.server.addr,
        pki.client_config(cert, &["http/1.1"]),
        Version::HTTP_11,
        "/still-serving",
        &[("authorization", &format!("Bearer {ALICE}"))],
    )
    .await;
    assert_eq!(r.status, 200, "after {after}: the proxy stopped serving");
}

#[tokio::test]
async fn bad_client_certificates_are_refused_at_the_handshake() {
    for client_auth in ["optional", "required"] {
        let (pki, h) = tls_setup(client_auth).await;
        let good = pki.client("alice", vec![dns_san("alice.members.test")]);
        let expired = pki.client_with("alice", vec![], |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        });
        let future = pki.client_with("alice", vec![], |p| {
            p.not_before = rcgen::date_time_ymd(2090, 1, 1);
            p.not_after = rcgen::date_time_ymd(2091, 1, 1);
        });
        let server_only = pki.client_with("alice", vec![], |p| {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        });
        let stranger = Pki::unrelated_client("alice");
        let cases: [(&str, &ClientCert, &[&str]); 4] = [
            ("84 unknown CA", &stranger, &["unknownca", "badcertificate"]),
            ("85 expired", &expired, &["expired", "badcertificate"]),
            (
                "86 not yet valid",
                &future,
                &["notvalidyet", "expired", "badcertificate"],
            ),
            (
                "87 serverAuth only",
                &server_only,
                &["unsupportedcertificate", "badcertificate", "purpose"],
            ),
        ];
        for (name, cert, alerts) in cases {
            let name = format!("{name} ({client_auth})");
            let why = tls_refusal(
                h.server.addr,
                pki.client_config(Some(cert), &["http/1.1"]),
                ALICE,
            )
            .await
            .to_ascii_lowercase();
            assert!(
                alerts.iter().any(|a| why.contains(a)),
                "{name}: expected one of {alerts:?}, got: {why}"
            );
            tls_still_serving(&pki, &h, Some(&good), &name).await;
        }
        assert_eq!(h.up.count(), 4, "only the still-serving probes");
    }
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_are_closed() {
    let (pki, h) = tls_setup("optional").await;
    let a = send(
        h.server.addr,
        format!("GET / HTTP/1.1\r\nHost: gw\r\n{}\r\n\r\n", auth_line(ALICE)).as_bytes(),
        false,
    )
    .await;
    assert!(
        !a.text().contains("200 OK") && !a.text().contains("x-upstream"),
        "88: plain HTTP was served on the TLS port: {}",
        a.text()
    );
    tls_still_serving(&pki, &h, None, "88").await;
    let garbage: Vec<u8> = [0x16u8, 0x03, 0x01, 0xff, 0xff]
        .into_iter()
        .chain((0u8..=255).cycle().take(2048))
        .collect();
    let a = send(h.server.addr, &garbage, false).await;
    assert!(!a.text().contains("HTTP/1.1"), "89: {}", a.text());
    tls_still_serving(&pki, &h, None, "89").await;
    assert_eq!(h.up.count(), 2);
}
