//! `clawgate check`'s tls rows, run as the real binary on real
//! certificates: expiry (warn within 30 days, fail once expired), the
//! server certificate's SANs against the hosts in members' ORIGINS, and
//! `client_auth = "required"` with a token-only member; and the expiry
//! gauge on the running proxy's `/metrics`, at start and after a reload.

use std::time::UNIX_EPOCH;

use super::*;
use common::tls::{expire_at, Pki};

const SERVER_EXPIRY: &str = "server certificate valid for 30 days or more";
const CA_EXPIRY: &str = "member CA valid for 30 days or more";
const SANS: &str = "server certificate covers the names members use";
const REQUIRED: &str = "client_auth = \"required\" leaves no token-only member";
/// The names alice's default ORIGINS and the local tests use.
const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "alice.example.com"];

/// Unix seconds `days` from now.
fn unix_in(days: i64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (now.as_secs() as i64 + days * 86_400) as u64
}

fn tls_dir(listen: &str, members: &[MemberSpec]) -> ConfigDir {
    ConfigDir::with_listen(&[("prod", GATEWAY.to_string())], members, listen)
}

fn evidence(r: &Value, check: &str) -> String {
    row(r, check)["evidence"].as_str().unwrap().to_string()
}

#[test]
fn check_warns_on_a_certificate_expiring_within_30_days_and_fails_an_expired_one() {
    let soon = unix_in(10);
    let pki = Pki::with(&NAMES, |p| expire_at(p, soon), |_| {});
    let cfg = tls_dir(
        &pki.listen_mtls("optional"),
        &[MemberSpec::new("alice", ALICE)],
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!((code, failing(&r)), (0, Vec::<String>::new()), "{r:#}");
    let server = row(&r, SERVER_EXPIRY);
    assert_eq!(server["status"], "warn", "{r:#}");
    assert_eq!(server["section"], "tls");
    let ev = evidence(&r, SERVER_EXPIRY);
    let at = rfc3339(UNIX_EPOCH + Duration::from_secs(soon));
    assert!(ev.contains(&format!("expires {at} (in 9 days)")), "{ev}");
    assert!(ev.contains("server.pem") && ev.contains("renew"), "{ev}");
    assert_eq!(row(&r, CA_EXPIRY)["status"], "pass", "{r:#}");
    assert_eq!(r["summary"]["warned"], 1);
    let out = cli(&["check", "--config", cfg.path().to_str().unwrap()]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("WARN    tls"), "{}", out.stdout);
    assert!(out.stdout.contains("RESULT: PASS (") && out.stdout.contains("1 warning(s))"));

    // Expired server certificate and member CA: both fail.
    let (gone, ca_gone) = (unix_in(-3), unix_in(-1));
    let pki = Pki::with(&NAMES, |p| expire_at(p, gone), |p| expire_at(p, ca_gone));
    let cfg = tls_dir(
        &pki.listen_mtls("optional"),
        &[MemberSpec::new("alice", ALICE)],
    );
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(failing(&r), vec![SERVER_EXPIRY, CA_EXPIRY], "{r:#}");
    let ev = evidence(&r, SERVER_EXPIRY);
    assert!(
        ev.contains("expired") && ev.contains("(3 days ago)"),
        "{ev}"
    );
    assert!(evidence(&r, CA_EXPIRY).contains("ca.pem"));
}

#[test]
fn check_fails_when_the_server_certificate_does_not_cover_a_members_origin() {
    let bob = MemberSpec::new("bob", BOB).set(
        "ORIGINS",
        "https://bob.example.com http://127.0.0.1:3000 https://localhost:8443 none",
    );
    let members = [MemberSpec::new("alice", ALICE), bob.clone()];
    let pki = Pki::with(&NAMES, |_| {}, |_| {});
    let cfg = tls_dir(&pki.listen_tls(), &members);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!((code, failing(&r)), (1, vec![SANS.to_string()]), "{r:#}");
    let ev = evidence(&r, SANS);
    assert!(
        ev.contains("bob's origin https://bob.example.com (host bob.example.com)"),
        "{ev}"
    );
    assert!(
        ev.contains("(SANs: DNS:localhost, DNS:alice.example.com, IP:127.0.0.1)"),
        "{ev}"
    );
    // Covered, or not served by this listener (http): not named.
    for fine in ["alice's", "localhost:8443", "127.0.0.1:3000"] {
        assert!(!ev.contains(fine), "{fine} named in {ev}");
    }

    // One wildcard SAN covers one label: both members pass ...
    let pki = Pki::with(&["*.example.com", "localhost"], |_| {}, |_| {});
    let cfg = tls_dir(&pki.listen_tls(), &members);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!((code, failing(&r)), (0, Vec::<String>::new()), "{r:#}");
    assert!(evidence(&r, SANS).starts_with("3 https origin(s)"), "{r:#}");
    // ... but not a wildcard origin one level deeper, nor an address.
    let carol = MemberSpec::new("carol", CAROL)
        .set("ORIGINS", "https://*.apps.example.com https://127.0.0.1");
    cfg.write_member(&carol);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(code, 1);
    let ev = evidence(&r, SANS);
    assert!(
        ev.contains("carol's origin https://*.apps.example.com (host *.apps.example.com)"),
        "{ev}"
    );
    assert!(
        ev.contains("carol's origin https://127.0.0.1 (host 127.0.0.1)"),
        "{ev}"
    );
}

#[test]
fn check_fails_required_client_auth_when_a_member_has_only_tokens() {
    let pki = Pki::new();
    let alice = pki.client("alice", Vec::new());
    let members = [
        MemberSpec::new("alice", "unused")
            .unset("TOKEN_SHA256")
            .set("CERT_SHA256", &alice.sha256_hex())
            .set("ORIGINS", "none"),
        MemberSpec::new("bob", BOB).set("ORIGINS", "none"),
    ];
    let cfg = tls_dir(&pki.listen_mtls("required"), &members);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!(
        (code, failing(&r)),
        (1, vec![REQUIRED.to_string()]),
        "{r:#}"
    );
    let ev = evidence(&r, REQUIRED);
    assert!(
        ev.starts_with("bob has only tokens and could never connect"),
        "{ev}"
    );
    assert!(!ev.contains("alice"), "{ev}");
    // "optional" lets bob in with his token: the row passes.
    let cfg = tls_dir(&pki.listen_mtls("optional"), &members);
    let (code, r) = check_json(cfg.path(), &[]);
    assert_eq!((code, failing(&r)), (0, Vec::<String>::new()), "{r:#}");
    assert_eq!(row(&r, REQUIRED)["status"], "pass");
}

/// The value of `clawgate_tls_cert_expiry_timestamp_seconds{role="ROLE"}`.
async fn expiry_gauge(admin: std::net::SocketAddr, role: &str) -> Option<u64> {
    let body = String::from_utf8(get(admin, "/metrics", &[]).await.body.to_vec()).unwrap();
    let prefix = format!("clawgate_tls_cert_expiry_timestamp_seconds{{role=\"{role}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_running_proxy_exports_certificate_expiry_at_start_and_after_a_reload() {
    let (first, ca_until, second) = (unix_in(200), unix_in(900), unix_in(40));
    let pki = Pki::with(&NAMES, |p| expire_at(p, first), |p| expire_at(p, ca_until));
    let cfg = ConfigDir::with_listen(
        &[("prod", GATEWAY.to_string())],
        &[MemberSpec::new("alice", ALICE)],
        &pki.listen_mtls("optional")
            .replace(&pki.file("server.pem").display().to_string(), "server.pem")
            .replace(&pki.file("server.key").display().to_string(), "server.key"),
    );
    pki.install_server_files(cfg.path());
    let p = Proc::start(&cfg);
    assert_eq!(expiry_gauge(p.admin, "server").await, Some(first));
    assert_eq!(expiry_gauge(p.admin, "client_ca").await, Some(ca_until));

    // A renewed certificate: the gauge follows the reload.
    let renewed = Pki::with(&NAMES, |p| expire_at(p, second), |_| {});
    renewed.install_server_files(cfg.path());
    p.signal("-HUP");
    p.wait_log("config reloaded", Duration::from_secs(10));
    assert_eq!(expiry_gauge(p.admin, "server").await, Some(second));
}
