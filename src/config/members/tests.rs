//! The member-file parser against files on disk: what parses, and the
//! line and fix each refusal names.

use super::*;
use std::io::Write;

fn write(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    let mut f = fs::File::create(&p).unwrap();
    f.write_all(body.as_bytes()).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

const HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

#[test]
fn a_complete_member_file_parses() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "alice.env",
        &format!("# alice\nTOKEN_SHA256=\"{HASH}@2030-01-01T00:00:00Z {HASH}\"\nORIGINS=\"https://a.example.com none\"\nEGRESS_CIDRS=10.0.0.0/8,::1\nSCOPES=\"operator.read operator.write\"\nMODE=audit\nUPSTREAM=staging\n"),
        0o600,
    );
    let pm = parse_member_file(&p).unwrap();
    let m = pm.member;
    assert_eq!(m.name, "alice");
    assert_eq!(m.tokens.len(), 2);
    assert!(m.tokens[0].expires.is_some());
    assert_eq!(m.scopes_header, "operator.read,operator.write");
    assert_eq!(m.mode, Mode::Audit);
    assert_eq!(pm.upstream, Some(("staging".into(), 7)));
}

#[test]
fn group_readable_file_is_refused_with_chmod_hint() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "bob.env", "ORIGINS=none\n", 0o640);
    let e = parse_member_file(&p).unwrap_err();
    assert!(e.reason.contains("chmod 600"), "{e}");
}

#[test]
fn unknown_key_names_its_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "bob.env",
        &format!("TOKEN_SHA256={HASH}\n\nORIGNS=none\n"),
        0o600,
    );
    let e = parse_member_file(&p).unwrap_err();
    assert_eq!(e.line_number(), Some(3));
    assert!(e.reason.contains("unknown key ORIGNS"), "{e}");
}

#[test]
fn plaintext_token_is_refused_without_echoing_it() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "bob.env",
        "ORIGINS=none\nEGRESS_CIDRS=10.0.0.0/8\nTOKEN_SHA256=supersecretplaintexttoken\n",
        0o600,
    );
    let e = parse_member_file(&p).unwrap_err();
    assert_eq!(e.line_number(), Some(3));
    assert!(!e.to_string().contains("supersecretplaintexttoken"), "{e}");
}

#[test]
fn bad_origin_and_cidr_name_their_lines() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "bob.env",
        &format!("TOKEN_SHA256={HASH}\nORIGINS=https://x.example.com/\nEGRESS_CIDRS=10.0.0.0/8\n"),
        0o600,
    );
    let e = parse_member_file(&p).unwrap_err();
    assert_eq!(e.line_number(), Some(2));
    assert!(e.reason.contains("trailing slash"), "{e}");
    let p = write(
        d.path(),
        "carol.env",
        &format!("TOKEN_SHA256={HASH}\nORIGINS=none\nEGRESS_CIDRS=10.0.0.0/40\n"),
        0o600,
    );
    assert_eq!(parse_member_file(&p).unwrap_err().line_number(), Some(3));
}

#[test]
fn duplicate_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "bob.env",
        &format!("TOKEN_SHA256={HASH}\nORIGINS=none\nEGRESS_CIDRS=10.0.0.0/8\nORIGINS=none\n"),
        0o600,
    );
    let e = parse_member_file(&p).unwrap_err();
    assert_eq!(e.line_number(), Some(4));
}

#[test]
fn missing_egress_and_origins_say_what_to_write() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "bob.env",
        &format!("TOKEN_SHA256={HASH}\nORIGINS=none\n"),
        0o600,
    );
    assert!(parse_member_file(&p)
        .unwrap_err()
        .reason
        .contains("EGRESS_CIDRS is missing"));
    let p = write(
        d.path(),
        "carl.env",
        &format!("TOKEN_SHA256={HASH}\n"),
        0o600,
    );
    assert!(parse_member_file(&p)
        .unwrap_err()
        .reason
        .contains("ORIGINS is missing"));
}

#[test]
fn bad_file_names_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "Bad Name.env", "", 0o600);
    assert!(parse_member_file(&p)
        .unwrap_err()
        .reason
        .contains("rename the file"));
}
