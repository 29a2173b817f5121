//! Drift between the gateway block clawgate expects ([`Expected`]) and a
//! gateway's real config: which users, origins and proxies one side has
//! and the other lacks, each as a line that names the key to fix.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn dotted(path: &[&str]) -> String {
    path.join(".")
}

fn string_set(v: Option<&Value>) -> Option<BTreeSet<String>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn set_diff(
    what: &[&str],
    expected: &BTreeSet<String>,
    actual: Option<BTreeSet<String>>,
    out: &mut Vec<String>,
) {
    let Some(actual) = actual else {
        out.push(format!(
            "{} is missing or not a list of strings (expected {:?})",
            dotted(what),
            expected
        ));
        return;
    };
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(expected).collect();
    if !missing.is_empty() {
        out.push(format!("{}: missing {:?}", dotted(what), missing));
    }
    if !extra.is_empty() {
        out.push(format!("{}: not in clawgate {:?}", dotted(what), extra));
    }
}

/// Differences in who the gateway lets in: allowUsers, identityScopes,
/// controlUi.allowedOrigins. Empty when they match.
pub fn allowlist_drift(expected: &Expected, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let users: BTreeSet<String> = expected.allow_users.iter().cloned().collect();
    set_diff(
        keys::ALLOW_USERS,
        &users,
        string_set(get(actual, keys::ALLOW_USERS)),
        &mut out,
    );
    match get(actual, keys::IDENTITY_SCOPES).and_then(Value::as_object) {
        None => out.push(format!(
            "{} is missing or not an object (expected one entry per member)",
            dotted(keys::IDENTITY_SCOPES)
        )),
        Some(map) => {
            for (member, scopes) in &expected.identity_scopes {
                let want: BTreeSet<String> = scopes.iter().cloned().collect();
                match string_set(map.get(member)) {
                    None => out.push(format!(
                        "{}.{member}: missing (expected {:?})",
                        dotted(keys::IDENTITY_SCOPES),
                        want
                    )),
                    Some(have) if have != want => out.push(format!(
                        "{}.{member}: gateway {:?}, clawgate SCOPES {:?}",
                        dotted(keys::IDENTITY_SCOPES),
                        have,
                        want
                    )),
                    Some(_) => {}
                }
            }
            let extra: Vec<_> = map
                .keys()
                .filter(|k| !expected.identity_scopes.contains_key(*k))
                .collect();
            if !extra.is_empty() {
                out.push(format!(
                    "{}: not clawgate members {:?}",
                    dotted(keys::IDENTITY_SCOPES),
                    extra
                ));
            }
        }
    }
    let origins: BTreeSet<String> = expected.allowed_origins.iter().cloned().collect();
    set_diff(
        keys::ALLOWED_ORIGINS,
        &origins,
        string_set(get(actual, keys::ALLOWED_ORIGINS)),
        &mut out,
    );
    out
}

/// Differences in how the gateway trusts clawgate: auth mode, user header,
/// trusted proxies, loopback. Empty when they match.
pub fn trust_drift(expected: &Expected, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mode = get(actual, keys::AUTH_MODE).and_then(Value::as_str);
    if mode != Some(keys::TRUSTED_PROXY_MODE) {
        out.push(format!(
            "{} is {:?}, expected \"{}\"",
            dotted(keys::AUTH_MODE),
            mode.unwrap_or("(unset)"),
            keys::TRUSTED_PROXY_MODE
        ));
    }
    let header = get(actual, keys::USER_HEADER).and_then(Value::as_str);
    if !header.is_some_and(|h| h.eq_ignore_ascii_case(&expected.user_header)) {
        out.push(format!(
            "{} is {:?}, clawgate sends the member name in \"{}\"",
            dotted(keys::USER_HEADER),
            header.unwrap_or("(unset)"),
            expected.user_header
        ));
    }
    if !expected.trusted_proxies.is_empty() {
        let want: BTreeSet<String> = expected.trusted_proxies.iter().cloned().collect();
        let mut d = Vec::new();
        set_diff(
            keys::TRUSTED_PROXIES,
            &want,
            string_set(get(actual, keys::TRUSTED_PROXIES)),
            &mut d,
        );
        // Missing is a broken setup; extra entries can also claim identities.
        out.extend(d);
    }
    let lb = get(actual, keys::ALLOW_LOOPBACK).and_then(Value::as_bool);
    if expected.allow_loopback && lb != Some(true) {
        out.push(format!(
            "{} is not true: the gateway refuses clawgate on loopback",
            dotted(keys::ALLOW_LOOPBACK)
        ));
    }
    out
}
