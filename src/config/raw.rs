//! The serde mirror of `clawgate.toml`: wire data only, no validation.
//!
//! Every struct denies unknown keys so a typo (`adress = ...`) is an error
//! with a line number instead of a silently ignored setting.
//! `config::base` turns this into validated domain types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBase {
    pub listen: RawListen,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub public: Vec<RawPublic>,
    #[serde(default)]
    pub client_ip: Option<RawClientIp>,
    #[serde(default)]
    pub members: Option<RawMembers>,
    #[serde(default)]
    pub log: Option<RawLog>,
    #[serde(default)]
    pub timeouts: Option<RawTimeouts>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub session: Option<RawSession>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub addr: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub client_ca: Option<String>,
    pub client_auth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Spanned so a refused address names its line.
    pub addr: Option<toml::Spanned<String>>,
    /// Explicit consent to a non-loopback admin address.
    #[serde(default)]
    pub allow_public: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    pub identity_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublic {
    pub path_prefix: String,
    pub source_cidrs: Vec<String>,
    pub upstream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientIp {
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub proxy_protocol: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMembers {
    pub dir: Option<String>,
    pub default_upstream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `stdout`, `off`, or a file path (relative to the config dir).
    pub access: Option<String>,
    /// tracing filter for the diagnostic log, e.g. `info` or `clawgate=debug`.
    pub level: Option<String>,
    /// Rotate the access-log file when it grows past this many bytes.
    pub max_bytes: Option<u64>,
    /// How many rotated files to keep.
    pub keep: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default, with = "humantime_serde")]
    pub header_read: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub upstream_connect: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub upstream_response: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub drain: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<u64>,
    pub max_header_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_unauthenticated_per_ip: Option<u32>,
    pub auth_failures_per_minute: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub auth_block: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// File holding the HMAC key for browser session cookies.
    pub key_file: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
}
