//! `clawgate check --config prod --config staging`: the shipped pair in
//! config/examples/ passes; a staging copy that reuses a prod port, a prod
//! file or a prod token fails the cross-stack row, naming the port or the
//! members (never the token hash); one `--config` prints the report as
//! before.

use super::*;

/// A copy of config/examples/{prod,staging} in a temp dir, member files
/// chmod 600 (git does not keep modes).
struct Pair {
    dir: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
            if dest.extension().is_some_and(|x| x == "env") {
                let perm = std::os::unix::fs::PermissionsExt::from_mode(0o600);
                std::fs::set_permissions(&dest, perm).unwrap();
            }
        }
    }
}

impl Pair {
    fn new() -> Pair {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let dir = tempfile::tempdir().unwrap();
        for stack in ["prod", "staging"] {
            copy_tree(&examples.join(stack), &dir.path().join(stack));
        }
        Pair { dir }
    }

    fn path(&self, stack: &str) -> String {
        self.dir.path().join(stack).to_str().unwrap().to_string()
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.dir.path().join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{from} not in {file}");
        std::fs::write(&p, text.replace(from, to)).unwrap();
    }

    fn check(&self, format: &str) -> Out {
        let (prod, staging) = (self.path("prod"), self.path("staging"));
        cli(&[
            "check", "--config", &prod, "--config", &staging, "--format", format,
        ])
    }
}

fn cross<'a>(report: &'a Value, check: &str) -> &'a Value {
    find(report, "cross_stack", "check", check)
}

const CROSS_ROWS: [&str; 4] = [
    "every stack loads",
    "no port shared between stacks",
    "no file shared between stacks",
    "no credential valid in two stacks",
];

#[test]
fn the_shipped_prod_staging_pair_passes_every_row() {
    let pair = Pair::new();
    let out = pair.check("json");
    let r = out.json();
    assert_eq!(out.code, 0, "{r:#}");
    assert_eq!(r["pass"], true);
    let stacks = r["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 2);
    for s in stacks {
        assert_eq!(failing(s), Vec::<String>::new(), "{s:#}");
    }
    for check in CROSS_ROWS {
        assert_eq!(cross(&r, check)["status"], "pass", "{check}: {r:#}");
        assert_eq!(cross(&r, check)["section"], "cross-stack");
    }
    assert!(cross(&r, "no port shared between stacks")["evidence"]
        .as_str()
        .unwrap()
        .contains("4 listener ports"));
    let text = pair.check("text");
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("CROSS-STACK"), "{}", text.stdout);
    assert!(
        text.stdout.contains("RESULT: PASS (2 stacks,"),
        "{}",
        text.stdout
    );
    let md = pair.check("md");
    assert_eq!(md.code, 0);
    assert!(md.stdout.contains("## Cross-stack checks"), "{}", md.stdout);
}

#[test]
fn staging_reusing_the_prod_listen_port_fails_naming_the_port() {
    let pair = Pair::new();
    pair.edit("staging/clawgate.toml", "127.0.0.1:8081", "127.0.0.1:8080");
    let out = pair.check("json");
    let r = out.json();
    assert_eq!(out.code, 1, "{r:#}");
    assert_eq!(r["pass"], false);
    // Each stack alone is still fine: only the cross-stack row fails.
    for s in r["stacks"].as_array().unwrap() {
        assert_eq!(s["pass"], true, "{s:#}");
    }
    let ports = cross(&r, "no port shared between stacks");
    assert_eq!(ports["status"], "fail");
    let ev = ports["evidence"].as_str().unwrap();
    assert!(ev.contains("port 8080 shared"), "{ev}");
    assert!(
        ev.contains("prod listen") && ev.contains("staging listen"),
        "{ev}"
    );
    let text = pair.check("text");
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("port 8080 shared"), "{}", text.stdout);
    assert!(
        text.stdout.contains("RESULT: FAIL (1 of "),
        "{}",
        text.stdout
    );
}

#[test]
fn staging_sharing_a_prod_token_fails_naming_both_members_not_the_hash() {
    let pair = Pair::new();
    let prod_bob = "3d56550a8c93be854a2e3d975c810be5fc47822f19ead6b0c941fa0e4d75f3b2";
    let staging_alice = "2687da655c9a2b467b1b55c83e1cbcf5c1257d66ae0aa7917ac3a0c6a1e997f6";
    pair.edit("staging/members/alice.env", staging_alice, prod_bob);
    for format in ["json", "text", "md"] {
        let out = pair.check(format);
        assert_eq!(out.code, 1, "{format}: {}", out.stdout);
        assert!(!out.stdout.contains(prod_bob), "{format} shows the hash");
    }
    let r = pair.check("json").json();
    let creds = cross(&r, "no credential valid in two stacks");
    assert_eq!(creds["status"], "fail");
    let ev = creds["evidence"].as_str().unwrap();
    assert!(ev.contains("a token valid in both"), "{ev}");
    // Not even the token id (a hash prefix, shown in the member table).
    assert!(!ev.contains(&prod_bob[..12]), "{ev}");
    assert!(
        ev.contains("prod bob") && ev.contains("staging alice"),
        "{ev}"
    );
    assert_eq!(cross(&r, "no port shared between stacks")["status"], "pass");
}

#[test]
fn stacks_sharing_the_access_log_and_session_key_fail_naming_the_files() {
    let pair = Pair::new();
    let log = pair.dir.path().join("access.log");
    let key = pair.dir.path().join("session.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let access = format!("access = \"{}\"", log.display());
    let session = format!(
        "level = \"info\"\n\n[session]\nkey_file = \"{}\"",
        key.display()
    );
    for stack in ["prod", "staging"] {
        let toml = format!("{stack}/clawgate.toml");
        pair.edit(&toml, "access = \"stdout\"", &access);
        pair.edit(&toml, "level = \"info\"", &session);
    }
    let r = pair.check("json").json();
    let files = cross(&r, "no file shared between stacks");
    assert_eq!(files["status"], "fail");
    let ev = files["evidence"].as_str().unwrap();
    assert!(ev.contains("access.log shared"), "{ev}");
    assert!(ev.contains("prod access log and "), "{ev}");
    assert!(ev.contains("session.key shared"), "{ev}");
    assert!(ev.contains("staging session key"), "{ev}");
    assert_eq!(r["pass"], false);
}

#[test]
fn one_config_prints_the_single_report_as_before() {
    let pair = Pair::new();
    let (code, r) = check_json(Path::new(&pair.path("prod")), &[]);
    assert_eq!(code, 0, "{r:#}");
    // The single-stack shape: no wrapper, no cross-stack rows.
    assert!(r.get("cross_stack").is_none() && r.get("stacks").is_none());
    assert_eq!(r["members"][0]["name"], "alice");
    assert_eq!(r["ports"][0]["port"], 8080);
    let text = cli(&["check", "--config", &pair.path("prod")]);
    assert!(!text.stdout.contains("CROSS-STACK"));
    assert!(text.stdout.contains("RESULT: PASS ("), "{}", text.stdout);
}

#[test]
fn a_client_certificate_valid_in_both_stacks_fails_naming_the_members() {
    let pair = Pair::new();
    let fp = sha256_hex("a client certificate");
    for stack in ["prod", "staging"] {
        let file = format!("{stack}/members/alice.env");
        pair.edit(
            &file,
            "MODE=enforce",
            &format!("MODE=enforce\nCERT_SHA256=\"{fp}\""),
        );
    }
    let out = pair.check("json");
    assert_eq!(out.code, 1, "{}", out.stdout);
    let r = out.json();
    let ev = cross(&r, "no credential valid in two stacks")["evidence"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ev.contains("a client certificate valid in both"), "{ev}");
    assert!(
        ev.contains("prod alice") && ev.contains("staging alice"),
        "{ev}"
    );
    assert!(!ev.contains(&fp[..]), "{ev}");
}
