//! `probe` against a live clawgate and upstream: HTTP and WebSocket round
//! trips, a denial with its diff, usage errors, and mTLS.

use super::*;

#[tokio::test]
async fn probe_passes_http_and_websocket_through_a_live_proxy() {
    let (up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["pass"], true);
    let http = &v["steps"][0];
    assert_eq!(http["step"], "http");
    assert_eq!(http["status"], 200);
    assert!(is_uuid_v7(http["request_id"].as_str().unwrap()));
    assert!(http["latency_ms"].as_f64().is_some());
    let ws = &v["steps"][1];
    assert_eq!(ws["step"], "websocket");
    assert_eq!(ws["status"], 101);
    assert_eq!(ws["pass"], true);
    assert!(ws["detail"].as_str().unwrap().contains("echoed"));
    // Measured by a ping and its pong: before, the figure was the 500 ms
    // the probe gives a server to speak first, plus the echo.
    let rtt = ws["round_trip_ms"].as_f64().unwrap();
    assert!(rtt > 0.0 && rtt < 400.0, "round trip {rtt} ms");
    assert!(up.count() >= 2);
    assert!(
        !out.stdout.contains(ALICE),
        "the token must never be printed"
    );

    let text = cli_async(s(&["probe", &url, "--token-file", &tf, "--ws-path", "/ws"])).await;
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("verdict: PASS"), "{}", text.stdout);
    assert!(!text.stdout.contains(ALICE));
}

#[tokio::test]
async fn probe_counts_a_server_that_speaks_first_as_a_websocket_pass() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws-headers",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let ws = &out.json()["steps"][1];
    assert_eq!(ws["status"], 101);
    assert!(
        ws["detail"]
            .as_str()
            .unwrap()
            .contains("first frame from the server"),
        "{ws:#}"
    );
}

#[tokio::test]
async fn probe_denied_prints_the_403_diff_and_fails() {
    let (up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let args = [
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws",
        "--origin",
        "http://alice.example.com",
    ];
    let mut json_args = s(&args);
    json_args.extend(s(&["--format", "json"]));
    let out = cli_async(json_args).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["pass"], false);
    for step in v["steps"].as_array().unwrap() {
        assert_eq!(step["status"], 403, "{step:#}");
        assert_eq!(step["reason"], "origin_not_allowed");
        assert_eq!(
            step["diff"]["origin"]["nearest"],
            "https://alice.example.com"
        );
        assert!(step["request_id"].as_str().is_some());
    }
    assert_eq!(up.count(), 0);
    let text = cli_async(s(&args)).await;
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("hint"), "{}", text.stdout);
    assert!(text.stdout.contains("scheme differs"), "{}", text.stdout);
    assert!(text.stdout.contains("verdict: FAIL"));

    let bad = cfg.path().join("bad.token");
    std::fs::write(&bad, "not-a-member-token\n").unwrap();
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        bad.to_str().unwrap(),
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["steps"][0]["status"], 401);
}

#[tokio::test]
async fn probe_rejects_usage_errors_before_connecting() {
    let out = cli_async(s(&["probe", "http://127.0.0.1:1/"])).await;
    assert_eq!(out.code, 2, "a credential is required");
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("t");
    std::fs::write(&tf, "x\n").unwrap();
    let out = cli_async(s(&[
        "probe",
        "https://127.0.0.1:1/",
        "--token-file",
        tf.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--ca"), "{}", out.stderr);
}

/// A small PKI written as PEM files: CA, server cert for 127.0.0.1, client.
struct Pem {
    dir: tempfile::TempDir,
    client_sha256: String,
}

impl Pem {
    fn new() -> Pem {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "probe test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut srv = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let srv_key = KeyPair::generate().unwrap();
        let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).unwrap();
        let mut cli = CertificateParams::new(Vec::<String>::new()).unwrap();
        cli.distinguished_name.push(DnType::CommonName, "alice");
        cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cli_key = KeyPair::generate().unwrap();
        let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();
        let w = |n: &str, t: String| std::fs::write(dir.path().join(n), t).unwrap();
        w("ca.pem", ca_cert.pem());
        w("server.pem", srv_cert.pem());
        w("server.key", srv_key.serialize_pem());
        w("client.pem", cli_cert.pem());
        w("client.key", cli_key.serialize_pem());
        Pem {
            client_sha256: sha256_hex_bytes(cli_cert.der()),
            dir,
        }
    }

    fn path(&self, n: &str) -> String {
        self.dir.path().join(n).to_str().unwrap().to_string()
    }
}

fn sha256_hex_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test]
async fn probe_over_mtls_with_a_client_certificate() {
    let pem = Pem::new();
    let up = Upstream::start().await;
    let alice = MemberSpec::new("alice", ALICE)
        .unset("TOKEN_SHA256")
        .set("CERT_SHA256", &pem.client_sha256);
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &[alice],
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca = \"{}\"\nclient_auth = \"required\"\n",
            pem.path("server.pem"),
            pem.path("server.key"),
            pem.path("ca.pem")
        ),
    );
    let server = start(&cfg).await;
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let out = cli_async(s(&[
        "probe",
        &url,
        "--cert",
        &pem.path("client.pem"),
        "--key",
        &pem.path("client.key"),
        "--ca",
        &pem.path("ca.pem"),
        "--ws-path",
        "/ws",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["steps"][0]["status"], 200);
    assert_eq!(v["steps"][1]["status"], 101);
    assert!(v["credential"]
        .as_str()
        .unwrap()
        .contains(&pem.client_sha256));
    assert_eq!(v["server_cert_sha256"].as_str().unwrap().len(), 64);

    // --insecure skips verification but still presents the client cert
    let out = cli_async(s(&[
        "probe",
        &url,
        "--cert",
        &pem.path("client.pem"),
        "--key",
        &pem.path("client.key"),
        "--insecure",
        "--ws-path",
        "/ws",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("server certificate sha256"));
}

#[tokio::test]
async fn probe_prints_a_markdown_ticket_table() {
    let (_up, cfg, server) = live(&[MemberSpec::new("alice", ALICE)], "").await;
    let url = format!("http://{}/", server.addr);
    let tf = token_file(&cfg, ALICE);
    let out = cli_async(s(&[
        "probe",
        &url,
        "--token-file",
        &tf,
        "--ws-path",
        "/ws",
        "--format",
        "md",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let md = &out.stdout;
    assert!(md.starts_with("## clawgate probe"), "{md}");
    assert!(md.contains("| step | target | status |"), "{md}");
    let ws_row = md
        .lines()
        .find(|l| l.starts_with("| websocket |"))
        .expect(md);
    assert!(
        ws_row.contains("| 101 |") && ws_row.contains("PASS"),
        "{ws_row}"
    );
    assert!(md.contains("**Verdict: PASS**"), "{md}");
    assert!(!md.contains(ALICE));
}
