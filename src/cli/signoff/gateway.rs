//! The `gateway` rows of the sign-off (`check --gateway-config FILE`):
//! the OpenClaw gateway's own config compared with what `clawgate
//! gateway-config` would generate for the members.

use std::path::Path;

use super::{row, Row, GATEWAY};
use crate::cli::gateway_config::{self, Expected};
use crate::config::Snapshot;

pub(super) fn rows(snap: Option<&Snapshot>, file: &Path, upstream: Option<&str>) -> Vec<Row> {
    const TRUST: &str = "gateway trusts clawgate in trusted-proxy mode";
    const ALLOW: &str = "gateway allowlists match members";
    let both = |ev: String| {
        vec![
            row(GATEWAY, TRUST, false, ev.clone()),
            row(GATEWAY, ALLOW, false, ev),
        ]
    };
    let Some(snap) = snap else {
        return both("cannot compare: the clawgate configuration did not load".into());
    };
    let idx = match gateway_config::pick_upstream(snap, upstream) {
        Ok(i) => i,
        Err(e) => return both(e),
    };
    let actual = match gateway_config::read_gateway_config(file) {
        Ok(v) => v,
        Err(e) => return both(e),
    };
    let expected = Expected::build(snap, idx);
    let fix = "; run clawgate gateway-config and merge its output";
    let trust = gateway_config::trust_drift(&expected, &actual);
    let allow = gateway_config::allowlist_drift(&expected, &actual);
    vec![
        if trust.is_empty() {
            row(
                GATEWAY,
                TRUST,
                true,
                format!(
                    "{}: mode trusted-proxy, userHeader {}, trustedProxies {:?}",
                    file.display(),
                    expected.user_header,
                    expected.trusted_proxies
                ),
            )
        } else {
            row(GATEWAY, TRUST, false, trust.join("; ") + fix)
        },
        if allow.is_empty() {
            row(
                GATEWAY,
                ALLOW,
                true,
                format!(
                    "{}: allowUsers {:?}, {} origin(s), identityScopes for each member",
                    file.display(),
                    expected.allow_users,
                    expected.allowed_origins.len()
                ),
            )
        } else {
            row(GATEWAY, ALLOW, false, allow.join("; ") + fix)
        },
    ]
}
