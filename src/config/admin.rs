//! `[admin]`: the listener for `/metrics`, `/healthz`, `/readyz` and
//! `/suggest`, on loopback unless the operator consents otherwise.

use std::net::SocketAddr;
use std::path::Path;

use super::error::{self, ConfigError};
use super::raw;
use clawgate_policy::cidr;

pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9180";
/// What to do about an admin listener off loopback (the load error and
/// `check`'s row say the same).
pub const ADMIN_FIX: &str = "bind [admin] addr to 127.0.0.1, or set allow_public = true";

/// The admin address and whether it may be off loopback; `text` is the
/// file's text, for the line of a bad `addr`.
pub(super) fn build(
    file: &Path,
    text: &str,
    admin: Option<raw::RawAdmin>,
) -> Result<(SocketAddr, bool), ConfigError> {
    let key_err = |k: &str, why: String| ConfigError::toml_key(file, text, k, why);
    let (admin_addr, allow_public) = match admin {
        Some(raw::RawAdmin { addr, allow_public }) => (addr, allow_public),
        None => (None, false),
    };
    let admin_err = |why: String| match &admin_addr {
        Some(a) => ConfigError::line(file, error::line_of_offset(text, a.span().start), why),
        None => key_err("admin.addr", why),
    };
    let admin_text = admin_addr
        .as_ref()
        .map_or(DEFAULT_ADMIN_ADDR, |a| a.get_ref());
    let admin_addr: SocketAddr = admin_text
        .parse()
        .map_err(|_| admin_err(format!("[admin] addr '{admin_text}' is not IP:PORT")))?;
    // `/metrics` and `/suggest` name members, their files and token IDs:
    // off loopback only by explicit consent.
    if !allow_public && !cidr::canonical(admin_addr.ip()).is_loopback() {
        return Err(admin_err(format!(
            "[admin] addr {admin_addr} is reachable from other hosts, and /metrics and /suggest show member names, file paths and token IDs: {ADMIN_FIX}"
        )));
    }
    Ok((admin_addr, allow_public))
}
