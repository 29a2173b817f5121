//! `clawgate plan`: the shipped config against edited copies (member
//! added, removed, narrowed, token rotated, a setting changed), an access
//! log written by a live clawgate replayed against a narrowing, a
//! `git:HEAD~` old config, and bad input.

use super::gateway_config::shipped_config;
use super::*;
use common::tls::Pki;

/// `src`'s clawgate.toml and member files in a new temp dir (files 0600).
pub(crate) fn copy_config(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    copy_config_to(src, dst.path());
    dst
}

pub(crate) fn copy_config_to(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.join("members")).unwrap();
    std::fs::copy(src.join("clawgate.toml"), dst.join("clawgate.toml")).unwrap();
    for e in std::fs::read_dir(src.join("members")).unwrap() {
        let e = e.unwrap();
        let to = dst.join("members").join(e.file_name());
        std::fs::copy(e.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn plan(args: &[&str]) -> Out {
    let mut a = vec!["plan"];
    a.extend_from_slice(args);
    cli(&a)
}

const ALICE_SHA: &str = "c6640b1653fb41ce9676cd4018b3cb7bf4dd7b63ff08a036a1e45b3f86ed169e";

/// The shipped config with bob removed, carol added, alice's origins
/// narrowed and her token rotated (old one kept until 2030), and a log
/// level and a timeout changed.
fn edited_shipped() -> (tempfile::TempDir, tempfile::TempDir) {
    let old = shipped_config();
    let new = copy_config(old.path());
    let members = new.path().join("members");
    std::fs::remove_file(members.join("bob.env")).unwrap();
    std::fs::write(
        members.join("carol.env"),
        format!(
            "TOKEN_SHA256={}\nORIGINS=none\nEGRESS_CIDRS=127.0.0.0/8\n",
            sha256_hex(CAROL)
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        members.join("carol.env"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let alice = members.join("alice.env");
    edit(&alice, " http://127.0.0.1:3000", "");
    edit(
        &alice,
        &format!("TOKEN_SHA256=\"{ALICE_SHA}\""),
        &format!(
            "TOKEN_SHA256=\"{ALICE_SHA}@2030-01-01T00:00:00Z {}\"",
            sha256_hex(ALICE)
        ),
    );
    let toml = new.path().join("clawgate.toml");
    edit(&toml, "level = \"info\"", "level = \"debug\"");
    edit(
        &toml,
        "upstream_connect = \"5s\"",
        "upstream_connect = \"3s\"",
    );
    (old, new)
}

fn member<'a>(v: &'a Value, name: &str) -> &'a Value {
    find(v, "members", "member", name)
}

fn key<'a>(m: &'a Value, key: &str) -> &'a Value {
    find(m, "keys", "key", key)
}

#[test]
fn plan_lists_members_and_settings_old_to_new_without_token_hashes() {
    let (old, new) = edited_shipped();
    let (o, n) = (old.path().to_str().unwrap(), new.path().to_str().unwrap());
    let out = plan(&["--from", o, "--config", n, "--format", "json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(member(&v, "bob")["change"], "removed");
    assert_eq!(key(member(&v, "bob"), "UPSTREAM")["old"], "staging");
    assert_eq!(member(&v, "carol")["change"], "added");
    let alice = member(&v, "alice");
    assert_eq!(alice["change"], "changed");
    let origins = key(alice, "ORIGINS");
    assert_eq!(
        origins["old"],
        "https://alice.example.com http://127.0.0.1:3000 none"
    );
    assert_eq!(origins["new"], "https://alice.example.com none");
    let tokens = key(alice, "TOKEN_SHA256");
    assert_eq!(tokens["old"], "tok_c6640b1653fb");
    let rotated = format!(
        "tok_{} tok_c6640b1653fb (expires 2030-01-01T00:00:00Z)",
        &sha256_hex(ALICE)[..12]
    );
    assert_eq!(tokens["new"], rotated.as_str());
    let settings = v["settings"].as_array().unwrap();
    let level = find(&v, "settings", "setting", "log.level");
    assert_eq!(
        (&level["old"], &level["new"]),
        (&"\"info\"".into(), &"\"debug\"".into())
    );
    assert_eq!(level["applies"], "restart");
    let connect = find(&v, "settings", "setting", "timeouts.upstream_connect");
    assert_eq!(connect["applies"], "reload");
    assert_eq!(settings.len(), 2, "{settings:#?}");
    let window = &v["rollback"]["token_windows"][0];
    assert_eq!(window["member"], "alice");
    assert_eq!(window["closes"], "2030-01-01T00:00:00Z");
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("token rotation and member policy"));
    // No token hash, whole or beyond the ID's 12 digits, anywhere.
    for f in ["text", "json", "md"] {
        let out = plan(&["--from", o, "--config", n, "--format", f]);
        assert!(
            !out.stdout.contains(&ALICE_SHA[..20]),
            "{f}: {}",
            out.stdout
        );
        assert!(!out.stdout.contains(&sha256_hex(ALICE)[..20]), "{f}");
    }
}

#[test]
fn plan_md_is_a_ticket_with_tables_rollback_and_the_mix_warning() {
    let (old, new) = edited_shipped();
    let (o, n) = (old.path().to_str().unwrap(), new.path().to_str().unwrap());
    let out = plan(&["--from", o, "--config", n, "--format", "md"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let md = out.stdout;
    for needle in [
        "## Members",
        "| alice | changed | ORIGINS | https://alice.example.com http://127.0.0.1:3000 none | https://alice.example.com none |",
        "| bob | removed | UPSTREAM | staging | - |",
        "| log.level | \"info\" | \"debug\" | restart |",
        "## Rollback",
        &format!("cp -a {o}/. {n}/"),
        &format!("rm {n}/members/carol.env"),
        "alice: old token tok_c6640b1653fb keeps working until 2030-01-01T00:00:00Z",
        "> **Warning:** this change mixes token rotation and member policy",
    ] {
        assert!(md.contains(needle), "no {needle:?} in:\n{md}");
    }
}

#[test]
fn plan_of_an_unchanged_config_is_empty_and_exits_0() {
    let old = shipped_config();
    let o = old.path().to_str().unwrap();
    let out = plan(&["--from", o, "--config", o, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["members"], serde_json::json!([]));
    assert_eq!(v["settings"], serde_json::json!([]));
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn plan_on_a_bad_dir_exits_2_naming_file_and_line() {
    let old = shipped_config();
    let new = copy_config(old.path());
    let toml = new.path().join("clawgate.toml");
    edit(&toml, "[timeouts]", "[timeouts]\nheader_read = [");
    let (o, n) = (old.path().to_str().unwrap(), new.path().to_str().unwrap());
    let out = plan(&["--from", o, "--config", n]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("clawgate.toml:"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let out = plan(&["--from", n, "--config", o]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--from:"), "{}", out.stderr);
    let out = plan(&["--from", "/nonexistent/dir", "--config", o]);
    assert_eq!(out.code, 2);
}

#[test]
fn plan_sees_new_tls_material_under_the_same_path_and_warns_on_the_mix() {
    let (pki, next) = (Pki::new(), Pki::new());
    let listen = "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\n";
    let old = ConfigDir::with_listen(
        &[("prod", GATEWAY.to_string())],
        &[MemberSpec::new("alice", ALICE)],
        listen,
    );
    pki.install_server_files(old.path());
    let new = copy_config(old.path());
    next.install_server_files(new.path());
    // Same files, same member: only the certificate's bytes differ.
    let (o, n) = (old.path().to_str().unwrap(), new.path().to_str().unwrap());
    let v = plan(&["--from", o, "--config", n, "--format", "json"]).json();
    let settings = v["settings"].as_array().unwrap();
    let names: Vec<&str> = settings
        .iter()
        .map(|s| s["setting"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "listen.tls_cert (file content)",
            "listen.tls_key (file content)"
        ]
    );
    assert_eq!(v["warnings"], serde_json::json!([]));
    // Plus a token rotation and an origin change: one ticket, three kinds.
    let alice = MemberSpec::new("alice", CAROL).set("ORIGINS", "none");
    std::fs::write(new.path().join("members/alice.env"), alice.render()).unwrap();
    let out = plan(&["--from", o, "--config", n, "--format", "json"]);
    let w = out.json()["warnings"][0].as_str().unwrap().to_string();
    assert!(
        w.contains("token rotation and TLS material and member policy"),
        "{w}"
    );
    let window = &out.json()["rollback"]["token_windows"][0];
    assert_eq!(window["closes"], Value::Null);
    assert_eq!(window["never"], false);
}
