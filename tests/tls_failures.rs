//! Connections to the TLS listener that fail before HTTP, with real rustls
//! clients and raw sockets: each reason counted on /metrics from 0, a
//! plain-HTTP request answered 400, and the log line (client address, no
//! secret) bounded under a flood.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{tls_refusal, Pki};
use common::*;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const ALICE: &str = "alice-token-0123456789";

const REASONS: [&str; 8] = [
    "no_client_cert",
    "unknown_ca",
    "bad_client_cert",
    "client_alert",
    "plain_http",
    "protocol",
    "timeout",
    "other",
];

fn series(reason: &str) -> String {
    format!("clawgate_tls_handshake_failures_total{{reason=\"{reason}\"}}")
}

/// A config whose listener requires client certificates, header_read 1 s.
fn mtls_config(pki: &Pki, up: &Upstream) -> ConfigDir {
    let cfg = ConfigDir::with_listen(
        &[("prod", up.url())],
        &[MemberSpec::new("alice", ALICE)],
        &pki.listen_mtls("required"),
    );
    cfg.write_base("[timeouts]\nheader_read = \"1s\"\n");
    cfg
}

/// The total over every reason.
fn total(metrics: &str) -> f64 {
    REASONS.iter().map(|r| sample(metrics, &series(r))).sum()
}

#[tokio::test]
async fn each_failure_is_counted_under_its_reason_from_zero() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cfg = mtls_config(&pki, &up);
    let server = start(&cfg).await;
    let (addr, admin) = (server.addr, server.admin_addr);
    let text = metrics(admin).await;
    for r in REASONS {
        assert_eq!(sample(&text, &series(r)), 0.0, "{r} is exported at 0");
    }
    // A port check (connect, close) is no failed handshake.
    drop(TcpStream::connect(addr).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(&metrics(admin).await), 0.0);

    tls_refusal(addr, pki.client_config(None, &["http/1.1"]), ALICE).await;
    sample_reaches(admin, &series("no_client_cert"), 1.0).await;
    let stranger = Pki::unrelated_client("mallory");
    tls_refusal(addr, pki.client_config(Some(&stranger), &[]), ALICE).await;
    sample_reaches(admin, &series("unknown_ca"), 1.0).await;
    let expired = pki.client_with("alice", vec![], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    tls_refusal(addr, pki.client_config(Some(&expired), &[]), ALICE).await;
    sample_reaches(admin, &series("bad_client_cert"), 1.0).await;
    // A client that does not trust the server certificate aborts.
    tls_refusal(addr, Pki::new().client_config(None, &[]), ALICE).await;
    sample_reaches(admin, &series("client_alert"), 1.0).await;
    raw(addr, b"\x00\x01 not tls", Duration::from_secs(5)).await;
    sample_reaches(admin, &series("protocol"), 1.0).await;
    // A record header, then nothing: the handshake breaks off.
    raw(addr, b"\x16\x03\x01", Duration::from_millis(10)).await;
    sample_reaches(admin, &series("other"), 1.0).await;
    // Connected, silent past header_read.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"\x16").await.unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "closed after header_read");
    sample_reaches(admin, &series("timeout"), 1.0).await;

    let text = metrics(admin).await;
    assert_eq!(total(&text), 7.0, "one each, nothing else:\n{text}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_plain_http_request_on_the_tls_port_gets_a_400_saying_https() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cfg = mtls_config(&pki, &up);
    let server = start(&cfg).await;
    let req = format!("GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ALICE}\r\n\r\n");
    let got = raw(server.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    assert!(got.contains("connection: close"), "{got}");
    assert!(got.ends_with("use an https:// URL.\n"), "{got}");
    sample_reaches(server.admin_addr, &series("plain_http"), 1.0).await;
    assert_eq!(up.count(), 0);
}

/// A handshake without a client certificate from a socket whose address
/// is returned; waits until the server has refused it.
async fn refused_without_cert(addr: std::net::SocketAddr, cfg: Arc<ClientConfig>) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let exchange = async {
        let mut s = TlsConnector::from(cfg).connect(name, tcp).await?;
        let req = format!("GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ALICE}\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), exchange).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "refused at the handshake: {refused:?}"
    );
    local.to_string()
}

#[tokio::test]
async fn failures_are_logged_with_the_client_address_and_no_secret_at_most_ten_a_minute() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cfg = mtls_config(&pki, &up);
    let proc = Proc::start(&cfg);
    let client = pki.client_config(None, &["http/1.1"]);
    let mut peers = Vec::new();
    for _ in 0..30 {
        peers.push(refused_without_cert(proc.addr, client.clone()).await);
    }
    sample_reaches(proc.admin, &series("no_client_cert"), 30.0).await;
    let mut lines = Vec::new();
    while let Ok(line) = proc.stderr.recv_timeout(Duration::from_millis(500)) {
        if line.contains("TLS handshake failed") {
            lines.push(line);
        }
    }
    assert_eq!(lines.len(), 10, "ten lines a minute: {lines:#?}");
    assert!(
        lines[0].contains(&format!("peer={}", peers[0])),
        "{}",
        lines[0]
    );
    for line in &lines {
        assert!(line.contains("reason=\"no_client_cert\""), "{line}");
        assert!(!line.contains(ALICE), "a secret in the log: {line}");
    }
}
