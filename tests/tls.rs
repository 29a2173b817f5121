//! The TLS listener on real sockets: HTTPS and h2 via ALPN, members
//! identified by client certificate (fingerprint or SAN), and mTLS
//! refusals at the handshake.

mod common;

use std::time::Duration;

use common::tls::{
    dns_san, email_san, https_get, send_get, tls_connect, tls_refusal, ClientCert, Pki,
};
use common::*;
use http::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-9876543210";

async fn setup(
    listen: &str,
    members: &[MemberSpec],
) -> (Upstream, ConfigDir, clawgate::runtime::server::Server) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::with_listen(&[("prod", up.url())], members, listen);
    let server = start(&cfg).await;
    (up, cfg, server)
}

/// A member known only by certificate facts (no token).
fn cert_member(name: &str, key: &str, value: &str) -> MemberSpec {
    MemberSpec::new(name, "unused")
        .unset("TOKEN_SHA256")
        .set(key, value)
}

fn alice_cert(pki: &Pki) -> ClientCert {
    pki.client("alice", vec![dns_san("alice.members.test")])
}

#[tokio::test]
async fn https_request_with_bearer_token_reaches_upstream_as_https() {
    let pki = Pki::new();
    let (_up, _cfg, server) = setup(&pki.listen_tls(), &[MemberSpec::new("alice", ALICE)]).await;
    let auth = format!("Bearer {ALICE}");
    let r = https_get(
        server.addr,
        pki.client_config(None, &["http/1.1"]),
        Version::HTTP_11,
        "/api/tls",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-forwarded-user"][0], "alice");
    assert!(
        h.get("authorization").is_none(),
        "credential leaked upstream"
    );
}

#[tokio::test]
async fn alpn_negotiates_h2_and_the_http2_request_is_forwarded_with_identity() {
    let pki = Pki::new();
    let (_up, _cfg, server) = setup(&pki.listen_tls(), &[MemberSpec::new("alice", ALICE)]).await;
    let auth = format!("Bearer {ALICE}");
    // https_get asserts that ALPN picked h2 and the response is HTTP/2.
    let r = https_get(
        server.addr,
        pki.client_config(None, &["h2"]),
        Version::HTTP_2,
        "/api/h2?q=1",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-request-id").is_some());
    let seen = r.json();
    assert_eq!(seen["path"], "/api/h2?q=1");
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-user"][0], "alice");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(
        h["x-forwarded-host"][0],
        format!("localhost:{}", server.addr.port())
    );
    assert_eq!(h["x-request-id"][0], r.request_id());
    assert!(
        h.get("authorization").is_none(),
        "credential leaked upstream"
    );
}

#[tokio::test]
async fn optional_client_auth_lets_a_token_caller_in_without_a_certificate() {
    let pki = Pki::new();
    let (_up, _cfg, server) = setup(
        &pki.listen_mtls("optional"),
        &[MemberSpec::new("alice", ALICE)],
    )
    .await;
    let r = https_get(
        server.addr,
        pki.client_config(None, &["http/1.1"]),
        Version::HTTP_11,
        "/",
        &[("x-clawgate-token", ALICE)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "alice");
}

#[tokio::test]
async fn client_cert_listed_in_cert_sha256_identifies_the_member_without_a_token() {
    let pki = Pki::new();
    let cert = alice_cert(&pki);
    let (_up, cfg, server) = setup(
        &pki.listen_mtls("required"),
        &[cert_member("alice", "CERT_SHA256", &cert.sha256_hex())],
    )
    .await;
    let r = https_get(
        server.addr,
        pki.client_config(Some(&cert), &["http/1.1"]),
        Version::HTTP_11,
        "/",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "alice");
    let line = cfg.log_line(r.request_id()).await;
    assert_eq!(line["member"], "alice");
    assert_eq!(line["credential"], cert.sha256_hex());
}

#[tokio::test]
async fn client_cert_with_a_dns_san_in_cert_san_identifies_the_member() {
    let pki = Pki::new();
    let cert = alice_cert(&pki);
    let (_up, _cfg, server) = setup(
        &pki.listen_mtls("optional"),
        &[cert_member("alice", "CERT_SAN", "alice.members.test")],
    )
    .await;
    let r = https_get(
        server.addr,
        pki.client_config(Some(&cert), &["http/1.1"]),
        Version::HTTP_11,
        "/",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "alice");
}

#[tokio::test]
async fn client_cert_with_an_email_san_in_cert_san_identifies_the_member() {
    let pki = Pki::new();
    let cert = pki.client("bob", vec![email_san("bob@example.com")]);
    let (_up, _cfg, server) = setup(
        &pki.listen_mtls("required"),
        &[
            MemberSpec::new("alice", ALICE),
            cert_member("bob", "CERT_SAN", "bob@example.com"),
        ],
    )
    .await;
    let r = https_get(
        server.addr,
        pki.client_config(Some(&cert), &["h2"]),
        Version::HTTP_2,
        "/",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-forwarded-user"][0], "bob");
}

#[tokio::test]
async fn required_client_auth_refuses_a_handshake_without_a_client_cert() {
    let pki = Pki::new();
    let (up, _cfg, server) = setup(
        &pki.listen_mtls("required"),
        &[MemberSpec::new("alice", ALICE)],
    )
    .await;
    let why = tls_refusal(server.addr, pki.client_config(None, &["http/1.1"]), ALICE).await;
    assert!(
        why.to_ascii_lowercase().contains("certificaterequired"),
        "expected a certificate_required alert, got: {why}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn required_client_auth_refuses_a_cert_from_an_unrelated_ca() {
    let pki = Pki::new();
    let stranger = Pki::unrelated_client("alice");
    let (up, _cfg, server) = setup(
        &pki.listen_mtls("required"),
        &[
            MemberSpec::new("alice", ALICE),
            // Even a member claiming this exact certificate must not get in:
            // the CA check comes first.
            cert_member("mallory", "CERT_SHA256", &stranger.sha256_hex()),
        ],
    )
    .await;
    let why = tls_refusal(
        server.addr,
        pki.client_config(Some(&stranger), &["http/1.1"]),
        ALICE,
    )
    .await;
    assert!(
        why.to_ascii_lowercase().contains("unknownca")
            || why.to_ascii_lowercase().contains("badcertificate"),
        "expected an unknown_ca or bad_certificate alert, got: {why}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn optional_client_auth_ca_signed_cert_no_member_claims_gets_401_unknown_cert() {
    let pki = Pki::new();
    let (up, _cfg, server) = setup(
        &pki.listen_mtls("optional"),
        &[MemberSpec::new("alice", ALICE)],
    )
    .await;
    let nobody = pki.client("nobody", vec![dns_san("nobody.members.test")]);
    let r = https_get(
        server.addr,
        pki.client_config(Some(&nobody), &["http/1.1"]),
        Version::HTTP_11,
        "/",
        &[],
    )
    .await;
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["reason"], "unknown_cert");
    assert!(b.get("member").is_none());
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn client_cert_beats_the_token_of_another_member() {
    let pki = Pki::new();
    let cert = alice_cert(&pki);
    let (_up, _cfg, server) = setup(
        &pki.listen_mtls("optional"),
        &[
            cert_member("alice", "CERT_SHA256", &cert.sha256_hex()),
            MemberSpec::new("bob", BOB),
        ],
    )
    .await;
    let auth = format!("Bearer {BOB}");
    let r = https_get(
        server.addr,
        pki.client_config(Some(&cert), &["http/1.1"]),
        Version::HTTP_11,
        "/",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-user"], serde_json::json!(["alice"]));
    assert!(
        h.get("authorization").is_none(),
        "bob's token leaked upstream"
    );
}

#[tokio::test]
async fn reload_rotates_the_server_certificate_for_new_connections_only() {
    let old = Pki::new();
    let new = Pki::new();
    let up = Upstream::start().await;
    let listen = "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\n";
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE)],
        listen,
    );
    old.install_server_files(cfg.path());
    let server = start(&cfg).await;
    let auth = format!("Bearer {ALICE}");
    let trusts_old = old.client_config(None, &["http/1.1"]);
    let trusts_new = new.client_config(None, &["http/1.1"]);
    assert!(tls_connect(server.addr, trusts_new.clone()).await.is_err());

    // A keep-alive connection opened on the old certificate.
    let mut kept = tls_connect(server.addr, trusts_old.clone()).await.unwrap();
    let req = format!("GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: {auth}\r\n\r\n");
    kept.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16384];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    new.install_server_files(cfg.path());
    server.reload().unwrap();
    let r = https_get(
        server.addr,
        trusts_new,
        Version::HTTP_11,
        "/",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        tls_connect(server.addr, trusts_old).await.is_err(),
        "new connections use the new cert"
    );

    // The connection opened before the reload carries on.
    kept.write_all(req.as_bytes()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// A TLS file the loader cannot use is refused on the line of the key
/// that names it.
#[test]
fn an_unusable_tls_file_names_the_line_of_its_key() {
    for (key, setting) in [
        ("tls_cert", "tls_cert = \"nope.pem\"\ntls_key = \"k.pem\"\n"),
        ("tls_key", "tls_cert = \"c.pem\"\ntls_key = \"nope.pem\"\n"),
        ("client_ca", "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nclient_ca = \"nope.pem\"\nclient_auth = \"optional\"\n"),
    ] {
        let pki = Pki::new();
        let cfg = ConfigDir::new(&[("prod", "http://127.0.0.1:18789".into())], &[MemberSpec::new("alice", ALICE)]);
        pki.install_server_files(cfg.path());
        std::fs::rename(cfg.path().join("server.pem"), cfg.path().join("c.pem")).unwrap();
        std::fs::rename(cfg.path().join("server.key"), cfg.path().join("k.pem")).unwrap();
        let toml = cfg.base.replace("[listen]\n", &format!("[listen]\n{setting}"));
        std::fs::write(cfg.path().join("clawgate.toml"), &toml).unwrap();
        let e = clawgate::config::load(cfg.path()).err().expect("refused");
        let line = toml.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        assert_eq!(e.line_number(), Some(line), "{key}: {e}");
        assert!(e.reason.starts_with(&format!("listen.{key}: ")), "{e}");
        assert!(e.reason.contains("nope.pem"), "{e}");
    }
}

#[tokio::test]
async fn the_protocol_is_the_one_alpn_chose_or_without_alpn_the_first_bytes() {
    let pki = Pki::new();
    let (_up, _cfg, server) = setup(&pki.listen_tls(), &[MemberSpec::new("alice", ALICE)]).await;
    let auth = format!("Bearer {ALICE}");
    // No ALPN offered: h2 by prior knowledge is still h2.
    let bare = tls_connect(server.addr, pki.client_config(None, &[]))
        .await
        .unwrap();
    assert_eq!(common::tls::alpn(&bare), None);
    let resp = send_get(bare, Version::HTTP_2, "/", &[("authorization", &auth)])
        .await
        .expect("h2 without ALPN is served");
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, Version::HTTP_2)
    );
    // ALPN said http/1.1: the h2 preface is not a request on it.
    let mut h1 = tls_connect(server.addr, pki.client_config(None, &["http/1.1"]))
        .await
        .unwrap();
    h1.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), h1.read_to_end(&mut got))
        .await
        .expect("answered and closed within 10s")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
}
