//! Configuration: `clawgate.toml` plus `members/*.env`, read and validated
//! into one immutable [`Snapshot`].
//!
//! Loading never touches the running proxy: a snapshot is either complete
//! and valid, or refused with a [`ConfigError`] naming file, line and fix.
//! `reload` swaps whole snapshots, so a request sees exactly one.

mod admin;
pub mod certs;
pub mod changes;
pub mod error;
pub mod members;
mod nets;
pub mod raw;
mod snapshot;
pub mod tls;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::uri::Scheme;
use http::{HeaderValue, Uri};

pub use error::ConfigError;
use raw::RawBase;

use clawgate_policy::cidr::CidrSet;
use clawgate_policy::identity::CredentialIndex;
use clawgate_policy::rules::PublicRoute;

pub const BASE_FILE: &str = "clawgate.toml";
pub const DEFAULT_IDENTITY_HEADER: &str = "x-forwarded-user";

pub use admin::{ADMIN_FIX, DEFAULT_ADMIN_ADDR};
pub use snapshot::*;

/// Load and validate the whole config directory: any bad file refuses it.
pub fn load(dir: &Path) -> Result<Snapshot, ConfigError> {
    read(dir, None, None).map(|l| l.snapshot)
}

/// A member file refused by [`load_keeping`] while the others applied.
#[derive(Debug)]
pub struct MemberFault {
    /// The file's stem (it may not be a valid member name).
    pub member: String,
    pub error: ConfigError,
    /// The member's last good file from the previous snapshot still
    /// applies; false for a new member, which is left out.
    pub kept: bool,
}

pub struct Loaded {
    pub snapshot: Snapshot,
    pub faults: Vec<MemberFault>,
}

/// Load as a reload does: a broken member file blocks only that member
/// (its last good version in `previous` stays, a new one is left out);
/// `clawgate.toml` and credential conflicts still refuse the whole load.
pub fn load_keeping(dir: &Path, previous: Option<&Snapshot>) -> Result<Loaded, ConfigError> {
    read(dir, Some(previous), None)
}

/// [`load`] as if `candidate` were on disk (added, or replacing the file
/// there): the commands that write a member file check it this way first.
pub fn load_with(
    dir: &Path,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Snapshot, ConfigError> {
    read(dir, None, candidate).map(|l| l.snapshot)
}

/// `keep`: `None` refuses on any bad file; `Some(previous)` keeps going.
/// `candidate`: a member file's text to judge as if it were on disk.
fn read(
    dir: &Path,
    keep: Option<Option<&Snapshot>>,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Loaded, ConfigError> {
    let base_path = dir.join(BASE_FILE);
    let text = fs::read_to_string(&base_path).map_err(|e| {
        ConfigError::file(
            &base_path,
            format!("cannot read: {e} (pass --config DIR pointing at the directory holding {BASE_FILE})"),
        )
    })?;
    let raw: RawBase = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| error::line_of_offset(&text, s.start))
            .unwrap_or(0);
        ConfigError::line(&base_path, line, e.message().to_string())
    })?;
    let base_sha256 = clawgate_policy::identity::sha256(text.as_bytes());
    build(dir, &base_path, &text, raw, base_sha256, keep, candidate)
}

fn build(
    dir: &Path,
    file: &Path,
    text: &str,
    raw: RawBase,
    base_sha256: [u8; 32],
    keep: Option<Option<&Snapshot>>,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Loaded, ConfigError> {
    let RawBase {
        listen,
        admin,
        upstreams,
        public,
        client_ip,
        members,
        log,
        timeouts,
        limits,
        session,
    } = raw;
    let rel = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let key_err = |k: &str, why: String| ConfigError::toml_key(file, text, k, why);

    // [listen]
    let raw::RawListen {
        addr,
        tls_cert,
        tls_key,
        client_ca,
        client_auth,
    } = listen;
    let listen_addr: SocketAddr = addr.parse().map_err(|_| {
        key_err(
            "listen.addr",
            format!("'{addr}' is not IP:PORT (e.g. 127.0.0.1:8443)"),
        )
    })?;
    let client_auth = match client_auth.as_deref() {
        None => None,
        Some("optional") => Some(ClientAuth::Optional),
        Some("required") => Some(ClientAuth::Required),
        Some(other) => {
            return Err(key_err(
                "listen.client_auth",
                format!("'{other}' must be \"optional\" or \"required\""),
            ))
        }
    };
    let tls_files = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: rel(&c),
            key: rel(&k),
            client_ca: client_ca.as_deref().map(rel),
            client_auth,
        }),
        (None, None) => {
            if client_ca.is_some() || client_auth.is_some() {
                return Err(key_err(
                    "listen.client_ca",
                    "mTLS needs TLS: set tls_cert and tls_key too".into(),
                ));
            }
            None
        }
        _ => {
            return Err(key_err(
                "listen.tls_cert",
                "tls_cert and tls_key go together: set both or neither".into(),
            ))
        }
    };
    if let Some(t) = &tls_files {
        if t.client_auth.is_some() != t.client_ca.is_some() {
            return Err(key_err(
                "listen.client_auth",
                "client_auth and client_ca go together: the CA verifies member certificates".into(),
            ));
        }
    }
    let tls = match &tls_files {
        Some(t) => Some(Arc::new(
            tls::server_config(t).map_err(|why| key_err(certs::listen_key(t, &why), why))?,
        )),
        None => None,
    };

    // [admin]
    let (admin_addr, allow_public) = admin::build(file, text, admin)?;

    // [upstreams.*]
    if upstreams.is_empty() {
        return Err(key_err(
            "upstreams",
            "no upstream: add [upstreams.prod] url = \"http://127.0.0.1:18789\"".into(),
        ));
    }
    let upstreams = upstreams
        .into_iter()
        .map(|(name, u)| build_upstream(file, text, name, u))
        .collect::<Result<Vec<_>, _>>()?;
    let upstream_index = |name: &str, key: &str| -> Result<usize, ConfigError> {
        upstreams
            .iter()
            .position(|u| u.name == name)
            .ok_or_else(|| {
                key_err(
                    key,
                    format!(
                        "no upstream named '{name}'; defined: {}",
                        upstreams
                            .iter()
                            .map(|u| u.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    };

    // [members]
    let (members_dir, default_upstream) = match members {
        Some(raw::RawMembers {
            dir: d,
            default_upstream,
        }) => (rel(d.as_deref().unwrap_or("members")), default_upstream),
        None => (rel("members"), None),
    };
    let default_upstream = match default_upstream {
        Some(n) => Some(upstream_index(&n, "members.default_upstream")?),
        None if upstreams.len() == 1 => Some(0),
        None => None,
    };

    // [[public]]
    let public = public
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
                return Err(key_err(
                    &format!("{key}.path_prefix"),
                    format!("'{path_prefix}' must start with '/'"),
                ));
            }
            if path_prefix == "/" {
                return Err(key_err(
                    &format!("{key}.path_prefix"),
                    "'/' would make every path public; use a narrow prefix such as /hooks/".into(),
                ));
            }
            // Requests are matched after `clawgate_policy::target`'s check and
            // decoding: a prefix they refuse or decode could never match.
            if clawgate_policy::target::check(&path_prefix).is_err()
                || clawgate_policy::target::has_encoded_unreserved(&path_prefix)
            {
                return Err(key_err(
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
                .map_err(|why| key_err(&format!("{key}.source_cidrs"), why))?;
            let upstream = match upstream {
                Some(n) => upstream_index(&n, &format!("{key}.upstream"))?,
                None => default_upstream.ok_or_else(|| {
                    key_err(
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
        .collect::<Result<Vec<_>, _>>()?;

    // [client_ip]
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
            .map_err(|why| key_err("client_ip.trusted_proxies", why))?,
    );

    // [log]
    let log = {
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
            Some(p) => AccessLog::File(rel(p)),
        };
        Log {
            access,
            level: level.unwrap_or_else(|| "info".into()),
            max_bytes: max_bytes.unwrap_or(100 * 1024 * 1024),
            keep: keep.unwrap_or(5),
        }
    };

    // [timeouts]
    let t = timeouts.unwrap_or(raw::RawTimeouts {
        header_read: None,
        upstream_connect: None,
        upstream_response: None,
        drain: None,
    });
    let timeouts = Timeouts {
        header_read: t.header_read.unwrap_or(Duration::from_secs(30)),
        upstream_connect: t.upstream_connect.unwrap_or(Duration::from_secs(5)),
        upstream_response: t.upstream_response.unwrap_or(Duration::from_secs(60)),
        drain: t.drain.unwrap_or(Duration::from_secs(30)),
    };

    // [limits]
    let l = limits.unwrap_or(raw::RawLimits {
        max_body_bytes: None,
        max_header_bytes: None,
        max_connections: None,
        max_unauthenticated_per_ip: None,
        auth_failures_per_minute: None,
        auth_block: None,
    });
    let limits = Limits {
        max_body_bytes: l.max_body_bytes.unwrap_or(32 * 1024 * 1024),
        max_header_bytes: l.max_header_bytes.unwrap_or(64 * 1024).max(8192),
        max_connections: l.max_connections.unwrap_or(20_000),
        per_ip: crate::limits::Settings {
            max_unauthenticated_per_ip: l.max_unauthenticated_per_ip.unwrap_or(1024),
            auth_failures_per_minute: l.auth_failures_per_minute.unwrap_or(60),
            block: l.auth_block.unwrap_or(Duration::from_secs(60)),
        },
    };

    // [session]
    let session = match session {
        Some(raw::RawSession { key_file, ttl }) => {
            let key_file = key_file.ok_or_else(|| {
                key_err("session.key_file", "set key_file: a file with at least 32 random bytes (e.g. head -c 32 /dev/urandom > tls/session.key)".into())
            })?;
            let path = rel(&key_file);
            let shown = path.display();
            let key = fs::read(&path)
                .map_err(|e| key_err("session.key_file", format!("{shown}: cannot read: {e}")))?;
            if key.len() < 32 {
                return Err(key_err(
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
    };

    // members/*.env
    let mut member_list = Vec::new();
    let mut fp = Fingerprint::new(&base_sha256);
    let mut faults = Vec::new();
    for path in members::member_files_with(&members_dir, candidate)? {
        let error = match member_from_file(&path, candidate, &upstreams, default_upstream) {
            Ok((m, file_sha256)) => {
                fp.member(&m.name, &file_sha256);
                member_list.push(m);
                continue;
            }
            Err(e) => e,
        };
        let Some(previous) = keep else {
            return Err(error);
        };
        let kept = previous.and_then(|p| last_good(p, &path, &upstreams));
        if let Some(m) = &kept {
            fp.kept(&m.name);
        }
        faults.push(MemberFault {
            member: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kept: kept.is_some(),
            error,
        });
        member_list.extend(kept);
    }
    let credentials = CredentialIndex::build(&member_list).map_err(|c| {
        let file = &member_list[c.second].file;
        let key = c
            .credential
            .split(' ')
            .next()
            .filter(|k| k.starts_with("CERT_"));
        error::env_key_error(
            file,
            key.unwrap_or("TOKEN_SHA256"),
            format!(
                "{} is also claimed by member '{}' ({}); each credential must belong to one member",
                c.credential,
                member_list[c.first].name,
                member_list[c.first].file.display()
            ),
        )
    })?;

    let snapshot = Snapshot {
        generation: 0,
        dir: dir.to_path_buf(),
        fingerprint: fp.finish(),
        listen: Listen {
            addr: listen_addr,
            tls: tls_files,
        },
        tls,
        admin: Admin {
            addr: admin_addr,
            allow_public,
        },
        upstreams,
        public,
        trusted_proxies,
        proxy_protocol,
        members_dir,
        members: member_list,
        credentials,
        log,
        timeouts,
        limits,
        session,
    };
    Ok(Loaded { snapshot, faults })
}

/// One member file, its upstream resolved against `upstreams`.
fn member_from_file(
    path: &Path,
    candidate: Option<members::Candidate<'_>>,
    upstreams: &[Upstream],
    default_upstream: Option<usize>,
) -> Result<(clawgate_policy::member::Member, [u8; 32]), ConfigError> {
    let parsed = members::parse_member(path, candidate)?;
    let mut m = parsed.member;
    m.upstream = match parsed.upstream {
        Some((name, line)) => upstreams
            .iter()
            .position(|u| u.name == name)
            .ok_or_else(|| {
                let defined: Vec<_> = upstreams.iter().map(|u| u.name.as_str()).collect();
                ConfigError::line(
                    path,
                    line,
                    format!(
                        "UPSTREAM: no upstream named '{name}' in {BASE_FILE}; defined: {}",
                        defined.join(", ")
                    ),
                )
            })?,
        None => default_upstream.ok_or_else(|| {
            ConfigError::file(
                path,
                "no UPSTREAM and no [members] default_upstream: set one of them",
            )
        })?,
    };
    Ok((m, parsed.file_sha256))
}

/// The member `previous` built from `path`, its upstream found again by
/// name among the new `upstreams` (none if that upstream is gone).
fn last_good(
    previous: &Snapshot,
    path: &Path,
    upstreams: &[Upstream],
) -> Option<clawgate_policy::member::Member> {
    let m = previous.members.iter().find(|m| m.file == path)?;
    let name = &previous.upstreams[m.upstream].name;
    let upstream = upstreams.iter().position(|u| &u.name == name)?;
    Some(clawgate_policy::member::Member {
        upstream,
        ..m.clone()
    })
}

fn build_upstream(
    file: &Path,
    text: &str,
    name: String,
    u: raw::RawUpstream,
) -> Result<Upstream, ConfigError> {
    let err = |key: &str, why: String| ConfigError::toml_key(file, text, key, why);
    let raw::RawUpstream {
        url,
        identity_header,
    } = u;
    let key = format!("upstreams.{name}.url");
    let uri: Uri = url.parse().map_err(|_| {
        err(
            &key,
            format!("'{url}' is not a URL (e.g. http://127.0.0.1:18789)"),
        )
    })?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| err(&key, format!("'{url}' needs a scheme: http://HOST:PORT")))?;
    if scheme != Scheme::HTTP {
        return Err(err(
            &key,
            format!(
                "'{url}': only http:// upstreams are supported (the gateway listens on loopback)"
            ),
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| err(&key, format!("'{url}' has no host")))?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(err(
            &key,
            format!("'{url}' has a path; an upstream is scheme://host:port only"),
        ));
    }
    let identity_header = identity_header.unwrap_or_else(|| DEFAULT_IDENTITY_HEADER.into());
    let identity_header = HeaderName::from_bytes(identity_header.as_bytes()).map_err(|_| {
        err(
            &format!("upstreams.{name}.identity_header"),
            format!("'{identity_header}' is not a header name"),
        )
    })?;
    Ok(Upstream {
        host_header: HeaderValue::from_str(authority.as_str())
            .map_err(|_| err(&key, "host is not a valid header value".into()))?,
        name,
        url: uri,
        scheme,
        authority,
        identity_header,
    })
}
