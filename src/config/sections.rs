//! The sections of `clawgate.toml`, each from its serde mirror to domain
//! types: one function per table, every field destructured, every error
//! naming its key and line.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clawgate_policy::cidr::CidrSet;
use clawgate_policy::rules::PublicRoute;

use super::cx::Cx;
use super::upstreams::index as upstream_index;
use super::{certs, nets, raw, tls, ConfigError};
use super::{AccessLog, ClientAuth, Limits, Listen, Log, Session, Timeouts, TlsFiles, Upstream};

/// `[listen]`, and the TLS server config built from its files (so a bad
/// certificate fails the load).
pub(super) fn listen(
    cx: &Cx<'_>,
    listen: raw::RawListen,
) -> Result<(Listen, Option<Arc<rustls::ServerConfig>>), ConfigError> {
    let raw::RawListen {
        addr,
        tls_cert,
        tls_key,
        client_ca,
        client_auth,
    } = listen;
    let listen_addr: SocketAddr = addr.parse().map_err(|_| {
        cx.key_err(
            "listen.addr",
            format!("'{addr}' is not IP:PORT (e.g. 127.0.0.1:8443)"),
        )
    })?;
    let client_auth = match client_auth.as_deref() {
        None => None,
        Some("optional") => Some(ClientAuth::Optional),
        Some("required") => Some(ClientAuth::Required),
        Some(other) => {
            return Err(cx.key_err(
                "listen.client_auth",
                format!("'{other}' must be \"optional\" or \"required\""),
            ))
        }
    };
    let tls_files = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: cx.rel(&c),
            key: cx.rel(&k),
            client_ca: client_ca.as_deref().map(|p| cx.rel(p)),
            client_auth,
        }),
        (None, None) => {
            if client_ca.is_some() || client_auth.is_some() {
                return Err(cx.key_err(
                    "listen.client_ca",
                    "mTLS needs TLS: set tls_cert and tls_key too".into(),
                ));
            }
            None
        }
        _ => {
            return Err(cx.key_err(
                "listen.tls_cert",
                "tls_cert and tls_key go together: set both or neither".into(),
            ))
        }
    };
    if let Some(t) = &tls_files {
        if t.client_auth.is_some() != t.client_ca.is_some() {
            return Err(cx.key_err(
                "listen.client_auth",
                "client_auth and client_ca go together: the CA verifies member certificates".into(),
            ));
        }
    }
    let tls = match &tls_files {
        Some(t) => {
            Some(Arc::new(tls::server_config(t).map_err(|why| {
                cx.key_err(certs::listen_key(t, &why), why)
            })?))
        }
        None => None,
    };

    Ok((
        Listen {
            addr: listen_addr,
            tls: tls_files,
        },
        tls,
    ))
}

/// `[members]`: the directory, and the default upstream (the only one
/// when there is one).
pub(super) fn members(
    cx: &Cx<'_>,
    members: Option<raw::RawMembers>,
    upstreams: &[Upstream],
) -> Result<(PathBuf, Option<usize>), ConfigError> {
    let (members_dir, default_upstream) = match members {
        Some(raw::RawMembers {
            dir: d,
            default_upstream,
        }) => (cx.rel(d.as_deref().unwrap_or("members")), default_upstream),
        None => (cx.rel("members"), None),
    };
    let default_upstream = match default_upstream {
        Some(n) => Some(upstream_index(
            cx,
            upstreams,
            &n,
            "members.default_upstream",
        )?),
        None if upstreams.len() == 1 => Some(0),
        None => None,
    };

    Ok((members_dir, default_upstream))
}

/// `[[public]]` routes.
pub(super) fn public(
    cx: &Cx<'_>,
    public: Vec<raw::RawPublic>,
    upstreams: &[Upstream],
    default_upstream: Option<usize>,
) -> Result<Vec<PublicRoute>, ConfigError> {
    public
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let raw::RawPublic {
                path_prefix,
                source_cidrs,
                upstream,
            } = p;
            let key = format!("public[{i}]");
            if !path_prefix.starts_with('/') {
                return Err(cx.key_err(
                    &format!("{key}.path_prefix"),
                    format!("'{path_prefix}' must start with '/'"),
                ));
            }
            if path_prefix == "/" {
                return Err(cx.key_err(
                    &format!("{key}.path_prefix"),
                    "'/' would make every path public; use a narrow prefix such as /hooks/".into(),
                ));
            }
            // Requests are matched after `clawgate_policy::target`'s check and
            // decoding: a prefix they refuse or decode could never match.
            if clawgate_policy::target::check(&path_prefix).is_err()
                || clawgate_policy::target::has_encoded_unreserved(&path_prefix)
            {
                return Err(cx.key_err(
                    &format!("{key}.path_prefix"),
                    format!(
                        "'{path_prefix}' is not a plain path (no '.' or '..' segments, backslashes, encoded slashes, control characters or escaped letters)"
                    ),
                ));
            }
            let nets = source_cidrs
                .iter()
                .map(|s| nets::parse_net(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| cx.key_err(&format!("{key}.source_cidrs"), why))?;
            let upstream = match upstream {
                Some(n) => upstream_index(cx, upstreams, &n, &format!("{key}.upstream"))?,
                None => default_upstream.ok_or_else(|| {
                    cx.key_err(
                        &format!("{key}.upstream"),
                        "set upstream (there is more than one and no [members] default_upstream)"
                            .into(),
                    )
                })?,
            };
            Ok(PublicRoute {
                path_prefix,
                sources: CidrSet::new(nets),
                upstream,
            })
        })
        .collect::<Result<Vec<_>, _>>()
}

/// `[client_ip]`: trusted proxies, and whether they send PROXY v2.
pub(super) fn client_ip(
    cx: &Cx<'_>,
    client_ip: Option<raw::RawClientIp>,
) -> Result<(CidrSet, bool), ConfigError> {
    let (trusted, proxy_protocol) = match client_ip {
        Some(raw::RawClientIp {
            trusted_proxies,
            proxy_protocol,
        }) => (trusted_proxies, proxy_protocol),
        None => (Vec::new(), false),
    };
    let trusted_proxies = CidrSet::new(
        trusted
            .iter()
            .map(|s| nets::parse_net(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| cx.key_err("client_ip.trusted_proxies", why))?,
    );

    Ok((trusted_proxies, proxy_protocol))
}

/// `[log]`.
pub(super) fn log(cx: &Cx<'_>, log: Option<raw::RawLog>) -> Log {
    let raw::RawLog {
        access,
        level,
        max_bytes,
        keep,
    } = log.unwrap_or(raw::RawLog {
        access: None,
        level: None,
        max_bytes: None,
        keep: None,
    });
    let access = match access.as_deref() {
        None | Some("stdout") => AccessLog::Stdout,
        Some("off") => AccessLog::Off,
        Some(p) => AccessLog::File(cx.rel(p)),
    };
    Log {
        access,
        level: level.unwrap_or_else(|| "info".into()),
        max_bytes: max_bytes.unwrap_or(100 * 1024 * 1024),
        keep: keep.unwrap_or(5),
    }
}

/// `[timeouts]`.
pub(super) fn timeouts(timeouts: Option<raw::RawTimeouts>) -> Timeouts {
    let t = timeouts.unwrap_or(raw::RawTimeouts {
        header_read: None,
        upstream_connect: None,
        upstream_response: None,
        drain: None,
    });
    Timeouts {
        header_read: t.header_read.unwrap_or(Duration::from_secs(30)),
        upstream_connect: t.upstream_connect.unwrap_or(Duration::from_secs(5)),
        upstream_response: t.upstream_response.unwrap_or(Duration::from_secs(60)),
        drain: t.drain.unwrap_or(Duration::from_secs(30)),
    }
}

/// `[limits]`.
pub(super) fn limits(limits: Option<raw::RawLimits>) -> Limits {
    let l = limits.unwrap_or(raw::RawLimits {
        max_body_bytes: None,
        max_header_bytes: None,
        max_connections: None,
        max_unauthenticated_per_ip: None,
        auth_failures_per_minute: None,
        auth_block: None,
    });
    Limits {
        max_body_bytes: l.max_body_bytes.unwrap_or(32 * 1024 * 1024),
        max_header_bytes: l.max_header_bytes.unwrap_or(64 * 1024).max(8192),
        max_connections: l.max_connections.unwrap_or(20_000),
        per_ip: crate::limits::Settings {
            max_unauthenticated_per_ip: l.max_unauthenticated_per_ip.unwrap_or(1024),
            auth_failures_per_minute: l.auth_failures_per_minute.unwrap_or(60),
            block: l.auth_block.unwrap_or(Duration::from_secs(60)),
        },
    }
}

/// `[session]`: the key file must hold at least 32 bytes.
pub(super) fn session(
    cx: &Cx<'_>,
    session: Option<raw::RawSession>,
) -> Result<Option<Session>, ConfigError> {
    Ok(match session {
        Some(raw::RawSession { key_file, ttl }) => {
            let key_file = key_file.ok_or_else(|| {
                cx.key_err("session.key_file", "set key_file: a file with at least 32 random bytes (e.g. head -c 32 /dev/urandom > tls/session.key)".into())
            })?;
            let path = cx.rel(&key_file);
            let shown = path.display();
            let key = fs::read(&path).map_err(|e| {
                cx.key_err("session.key_file", format!("{shown}: cannot read: {e}"))
            })?;
            if key.len() < 32 {
                return Err(cx.key_err(
                    "session.key_file",
                    format!("{shown}: a session key must be at least 32 bytes"),
                ));
            }
            Some(Session {
                key: key.into(),
                ttl: ttl.unwrap_or(Duration::from_secs(12 * 3600)),
            })
        }
        None => None,
    })
}
