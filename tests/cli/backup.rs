//! `clawgate backup` and `clawgate restore` through the real binary: the
//! shipped config backed up, restored and cold-started (`--verify`), the
//! two `check` reports equal; a non-empty target, a tampered tar and tars
//! with `../` or a link refused with nothing written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::common::tls::Pki;
use super::gateway_config::shipped_config;
use super::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn backup(cfg: &Path, out: &Path) -> Out {
    cli(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

fn restore(tar: &Path, to: &Path, extra: &[&str]) -> Out {
    let mut args = vec![
        "restore",
        tar.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

/// `check --format json` with the directory's own path taken out.
fn check_without_paths(dir: &Path) -> Value {
    let (code, report) = check_json(dir, &[]);
    assert_eq!(code, 0, "{report:#}");
    let text = report.to_string().replace(dir.to_str().unwrap(), "DIR");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("generated_at");
    v
}

/// Names (sorted) in `dir`, recursively, with their contents.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p.display().to_string(), fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn the_shipped_config_backs_up_restores_and_cold_starts_with_the_same_check() {
    let cfg = shipped_config();
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("clawgate.tar");
    let out = backup(cfg.path(), &tar);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&tar), 0o600, "the backup holds token hashes");

    let to = work.path().join("restored");
    let out = restore(&tar, &to, &["--verify", "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    let files: Vec<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "clawgate.toml",
            "members/alice.env",
            "members/bob.env",
            "gateway-config.json5"
        ]
    );
    let v = &r["verify"];
    assert_eq!(v["problems"], serde_json::json!([]), "{r:#}");
    // Bound for real on loopback ephemeral ports, not the config's 8080/9180.
    for k in ["listen", "admin"] {
        let addr: std::net::SocketAddr = v[k].as_str().unwrap().parse().unwrap();
        assert!(
            addr.ip().is_loopback() && addr.port() != 8080 && addr.port() != 9180,
            "{k}: {addr}"
        );
    }
    // No gateway runs here: the admin listener answers, not ready.
    assert!(v["readyz"].as_str().unwrap().starts_with("503"), "{v:#}");
    let members: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["alice", "bob"]);
    assert!(v["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        v["rpo_seconds"].as_u64().unwrap() < 600,
        "the copy was made just now"
    );

    assert_eq!(check_without_paths(cfg.path()), check_without_paths(&to));
    for f in ["clawgate.toml", "members/alice.env", "members/bob.env"] {
        assert_eq!(mode(&cfg.path().join(f)), mode(&to.join(f)), "{f}");
        assert_eq!(
            fs::read(cfg.path().join(f)).unwrap(),
            fs::read(to.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(fs::read_to_string(to.join("gateway-config.json5"))
        .unwrap()
        .contains("trusted-proxy"));
}

#[test]
fn restore_into_a_non_empty_directory_needs_force_and_touches_nothing() {
    let cfg = shipped_config();
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("b.tar");
    assert_eq!(backup(cfg.path(), &tar).code, 0);
    let to = work.path().join("busy");
    fs::create_dir(&to).unwrap();
    fs::write(to.join("clawgate.toml"), "# the live one\n").unwrap();
    let before = tree(&to);
    let out = restore(&tar, &to, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not empty") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    assert_eq!(tree(&to), before);

    let out = restore(&tar, &to, &["--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        fs::read(to.join("clawgate.toml")).unwrap(),
        fs::read(cfg.path().join("clawgate.toml")).unwrap()
    );
}

#[test]
fn a_tampered_backup_is_refused_before_anything_is_written() {
    let cfg = shipped_config();
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("b.tar");
    assert_eq!(backup(cfg.path(), &tar).code, 0);
    let member = fs::read(cfg.path().join("members/alice.env")).unwrap();
    let mut bytes = fs::read(&tar).unwrap();
    let at = bytes
        .windows(member.len())
        .position(|w| w == member.as_slice())
        .expect("alice.env stored as is");
    bytes[at + member.len() / 2] ^= 0x01;
    fs::write(&tar, &bytes).unwrap();

    let to = work.path().join("to");
    let out = restore(&tar, &to, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("members/alice.env") && out.stderr.contains("SHA-256"),
        "{}",
        out.stderr
    );
    assert!(!to.exists(), "nothing written");
}

/// A tar entry named `name` (written raw: the tar crate's own builder
/// refuses `..`, an attacker's tool does not).
fn raw_entry(name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn entries_leaving_the_directory_or_links_are_refused_and_write_nothing() {
    let outer = tempfile::tempdir().unwrap();
    let cases = [
        (
            "dotdot",
            raw_entry("../evil", tar::EntryType::Regular, None, b"pwned\n"),
        ),
        (
            "absolute",
            raw_entry(
                &format!("{}/evil", outer.path().display()),
                tar::EntryType::Regular,
                None,
                b"pwned\n",
            ),
        ),
        (
            "symlink",
            raw_entry("members", tar::EntryType::Symlink, Some(".."), b""),
        ),
        (
            "hardlink",
            raw_entry(
                "clawgate.toml",
                tar::EntryType::Link,
                Some("/etc/passwd"),
                b"",
            ),
        ),
    ];
    for (what, entry) in cases {
        let mut bytes = entry;
        bytes.extend_from_slice(&[0u8; 1024]);
        let tar = outer.path().join(format!("{what}.tar"));
        fs::write(&tar, &bytes).unwrap();
        let to = outer.path().join(format!("to-{what}"));
        let out = restore(&tar, &to, &[]);
        assert_eq!(out.code, 2, "{what}: {}", out.stdout);
        assert!(
            out.stderr.contains("refusing the whole backup"),
            "{what}: {}",
            out.stderr
        );
        assert!(!to.exists(), "{what}: nothing written");
        assert!(
            !outer.path().join("evil").exists(),
            "{what}: nothing outside --to"
        );
    }
}

/// The shipped config with TLS (mTLS CA), a session key and an access log
/// file, all under the directory.
fn with_tls_and_session(cfg: &Path, pki: &Pki) {
    let tls = cfg.join("tls");
    fs::create_dir(&tls).unwrap();
    for f in ["server.pem", "server.key", "ca.pem"] {
        fs::copy(pki.file(f), tls.join(f)).unwrap();
    }
    fs::write(tls.join("session.key"), [7u8; 32]).unwrap();
    for f in ["server.key", "session.key"] {
        fs::set_permissions(tls.join(f), fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::write(cfg.join("access.log"), "{\"request_id\":\"x\"}\n").unwrap();
    let toml = fs::read_to_string(cfg.join("clawgate.toml")).unwrap();
    let toml = toml
        .replace(
            "addr = \"127.0.0.1:8080\"",
            "addr = \"127.0.0.1:8080\"\ntls_cert = \"tls/server.pem\"\ntls_key = \"tls/server.key\"\nclient_ca = \"tls/ca.pem\"\nclient_auth = \"optional\"",
        )
        .replace("access = \"stdout\"", "access = \"access.log\"");
    fs::write(
        cfg.join("clawgate.toml"),
        format!("{toml}\n[session]\nkey_file = \"tls/session.key\"\n"),
    )
    .unwrap();
}

/// `MANIFEST.json` read back from the tar.
fn manifest_of(tar: &Path) -> Value {
    let bytes = fs::read(tar).unwrap();
    let mut ar = tar::Archive::new(bytes.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("MANIFEST.json") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            return serde_json::from_str(&s).unwrap();
        }
    }
    panic!("no MANIFEST.json in {}", tar.display());
}

#[test]
fn tls_files_and_the_session_key_are_in_the_set_and_the_access_log_is_not() {
    let cfg = shipped_config();
    let pki = Pki::new();
    with_tls_and_session(cfg.path(), &pki);
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("b.tar");
    let out = backup(cfg.path(), &tar);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = manifest_of(&tar);
    let paths: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in [
        "tls/server.pem",
        "tls/server.key",
        "tls/ca.pem",
        "tls/session.key",
        "members/bob.env",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.contains("access")),
        "the access log is never backed up: {paths:?}"
    );
    let key = find(&m, "files", "path", "tls/server.key");
    assert_eq!(key["mode"], 0o600);
    assert_eq!(key["uid"], 0);
    assert_eq!(key["user"], "root", "these tests run as root");
    assert!(humantime::parse_rfc3339(m["newest_change"].as_str().unwrap()).is_ok());

    let to = work.path().join("r");
    let out = restore(&tar, &to, &["--verify"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verify: ok"), "{}", out.stdout);
    assert!(out.stdout.contains("RPO: "), "{}", out.stdout);
    assert!(
        !to.join("access.log").exists(),
        "--verify does not write the access log"
    );
    for f in ["tls/server.key", "tls/session.key", "tls/server.pem"] {
        assert_eq!(mode(&to.join(f)), mode(&cfg.path().join(f)), "{f}");
    }
}

#[test]
fn a_file_named_outside_the_config_directory_is_refused_with_its_key() {
    let cfg = shipped_config();
    let pki = Pki::new();
    with_tls_and_session(cfg.path(), &pki);
    let toml = fs::read_to_string(cfg.path().join("clawgate.toml")).unwrap();
    let outside = pki.file("ca.pem");
    fs::write(
        cfg.path().join("clawgate.toml"),
        toml.replace("\"tls/ca.pem\"", &format!("\"{}\"", outside.display())),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("b.tar");
    let out = backup(cfg.path(), &tar);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("listen.client_ca")
            && out.stderr.contains("outside the config directory"),
        "{}",
        out.stderr
    );
    assert!(!tar.exists());
}
