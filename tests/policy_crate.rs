//! The policy crate stays pure: no async runtime, HTTP server or TLS stack
//! among its normal dependencies, direct or transitive. A change that pulls
//! one in (say, a `tokio::sync` type in `identity`) fails here.

use std::process::Command;

/// Crates that mean I/O or a network stack: none may reach the policy.
const FORBIDDEN: [&str; 6] = [
    "tokio",
    "tokio-rustls",
    "hyper",
    "hyper-util",
    "rustls",
    "rustls-pki-types",
];

/// Every crate `clawgate-policy` depends on (normal edges only), by name.
fn policy_dependencies() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "clawgate-policy",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_policy_crate_depends_on_no_runtime_server_or_tls_stack() {
    let deps = policy_dependencies();
    // The listing is real: the crate itself and a dependency it must have.
    assert!(deps.iter().any(|d| d == "clawgate-policy"), "{deps:?}");
    assert!(deps.iter().any(|d| d == "ipnet"), "{deps:?}");
    let found: Vec<&String> = deps
        .iter()
        .filter(|d| FORBIDDEN.contains(&d.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "clawgate-policy depends on {found:?}; keep I/O in clawgate"
    );
}
