//! README's "TLS and mTLS" section, followed word for word: its commands
//! (between the `tls-walkthrough` markers) run with the real openssl in a
//! fresh config directory holding alice's member file, its `[listen]`
//! block becomes the listener, `clawgate check` must pass, and its curl
//! line, against the real clawgate and a real upstream, must print 200,
//! and be refused without alice's certificate. The only substitutions are
//! the ports: the listener binds 127.0.0.1:0 like every test, and curl is
//! pointed at the port it got.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const BEGIN: &str = "<!-- tls-walkthrough:begin -->";
const END: &str = "<!-- tls-walkthrough:end -->";
const README_PORT: &str = "8443";

/// The fenced blocks between the markers, as (language, text).
fn walkthrough() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme.find(BEGIN).expect("README has the begin marker") + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .expect("README has the end marker");
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in readme[start..end].lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(lang), None) => open = Some((lang.to_string(), String::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((lang, mut text))) => {
                text.push_str(line);
                text.push('\n');
                open = Some((lang, text));
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed block in the walkthrough");
    blocks
}

/// Shell commands of a block, one per entry (continuation lines joined).
fn commands(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Run `cmd` with sh in `dir`, the clawgate binary first on PATH.
fn sh(dir: &Path, cmd: &str) -> Out {
    let bin = Path::new(env!("CARGO_BIN_EXE_clawgate")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-euc", cmd])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .expect("sh runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn sh_async(dir: &Path, cmd: String) -> Out {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || sh(&dir, &cmd))
        .await
        .unwrap()
}

/// The `[listen]` block's settings, without its header and its address.
fn listen_settings(toml: &str) -> String {
    assert!(toml.starts_with("[listen]\n"), "{toml}");
    toml.lines()
        .skip(1)
        .filter(|l| !l.starts_with("addr = "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn the_readme_tls_walkthrough_serves_alice_over_mtls() {
    let blocks = walkthrough();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        langs,
        ["sh", "toml", "sh"],
        "the walkthrough's shape changed"
    );
    let (setup, toml, verify) = (&blocks[0].1, &blocks[1].1, commands(&blocks[2].1));
    assert!(toml.contains(&format!(":{README_PORT}\"")));
    assert_eq!(verify.len(), 2, "{verify:?}");

    // alice starts with no credential: the walkthrough gives her one.
    let up = Upstream::start().await;
    let alice = MemberSpec::new("alice", "unused")
        .unset("TOKEN_SHA256")
        .set("ORIGINS", "https://gw.example.com none");
    let cfg = ConfigDir::with_listen(&[("prod", up.url())], &[alice], &listen_settings(toml));
    let out = sh_async(cfg.path(), setup.clone()).await;
    assert_eq!(out.code, 0, "setup failed: {}\n{}", out.stdout, out.stderr);

    let check = sh_async(cfg.path(), verify[0].clone()).await;
    assert!(verify[0].starts_with("clawgate check"), "{verify:?}");
    assert_eq!(check.code, 0, "check failed:\n{}", check.stdout);
    assert!(check.stdout.contains("PASS    tls"), "{}", check.stdout);

    let proxy = Proc::start(&cfg);
    let curl = verify[1].replace(README_PORT, &proxy.addr.port().to_string());
    assert!(curl.starts_with("curl ") && curl.contains("--cert ca/alice.crt"));
    let ok = sh_async(cfg.path(), curl.clone()).await;
    assert_eq!((ok.code, ok.stdout.trim()), (0, "200"), "{}", ok.stderr);
    // alice has no token: only her certificate can have let her through.
    assert_eq!(up.seen(), ["GET /"], "the request reached the upstream");

    // Without the certificate, the handshake is refused: no HTTP status.
    let bare = curl.replace("--cert ca/alice.crt --key ca/alice.key ", "");
    assert_ne!(bare, curl);
    let refused = sh_async(cfg.path(), bare).await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert_eq!(refused.stdout.trim(), "000", "{}", refused.stderr);
    assert_eq!(up.count(), 1, "the refused request reached the upstream");
}
