//! The validated configuration: plain domain types, no serde. A
//! [`Snapshot`] is built whole by `config::load` and never changes after.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};

use clawgate_policy::cidr::CidrSet;
use clawgate_policy::identity::CredentialIndex;
use clawgate_policy::member::Member;
use clawgate_policy::rules::{PublicRoute, Rules};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Optional,
    Required,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: Option<ClientAuth>,
}

#[derive(Clone, Debug)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Clone, Debug)]
pub struct Admin {
    pub addr: SocketAddr,
    pub allow_public: bool,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub url: Uri,
    pub scheme: Scheme,
    pub authority: Authority,
    /// `authority` as the `Host` header value sent upstream.
    pub host_header: HeaderValue,
    pub identity_header: HeaderName,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Log {
    pub access: AccessLog,
    pub level: String,
    pub max_bytes: u64,
    pub keep: u32,
}

#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Time to receive a request's headers; hyper also applies it to an
    /// idle keep-alive connection waiting for its next request.
    pub header_read: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    pub drain: Duration,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub per_ip: crate::limits::Settings,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub key: Arc<[u8]>,
    pub ttl: Duration,
}

/// One complete, validated configuration.
pub struct Snapshot {
    /// Bumped by every reload: per-connection caches compare it.
    pub generation: u64,
    pub dir: PathBuf,
    /// Which files this snapshot was built from (see [`Fingerprint`]):
    /// `/readyz` shows it so `clawgate oncall` can tell its own instance
    /// from a stale or foreign one.
    pub fingerprint: String,
    pub listen: Listen,
    /// Built from `listen.tls` at load time, so bad PEM fails the load.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub admin: Admin,
    pub upstreams: Vec<Upstream>,
    pub public: Vec<PublicRoute>,
    pub trusted_proxies: CidrSet,
    pub proxy_protocol: bool,
    pub members_dir: PathBuf,
    pub members: Vec<Member>,
    pub credentials: CredentialIndex,
    pub log: Log,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub session: Option<Session>,
}

impl Snapshot {
    /// The policy's view of this configuration.
    #[inline]
    pub fn rules(&self) -> Rules<'_> {
        Rules {
            members: &self.members,
            credentials: &self.credentials,
            public: &self.public,
        }
    }

    pub fn member_by_name(&self, name: &str) -> Option<(usize, &Member)> {
        self.rules().member_by_name(name)
    }

    pub fn upstream_by_name(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.name == name)
    }

    /// The public route whose prefix matches `path`, longest first.
    pub fn public_route(&self, path: &str) -> Option<&PublicRoute> {
        self.rules().public_route(path)
    }
}

/// SHA-256 over `clawgate.toml` and every member file (name and contents)
/// as the loader read them, in load order; shown as its first 16 hex
/// digits. Any edit to those files, once loaded, changes it.
pub struct Fingerprint(sha2::Sha256);

impl Fingerprint {
    pub fn new(base_sha256: &[u8; 32]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"clawgate.toml\0");
        h.update(base_sha256);
        Fingerprint(h)
    }

    pub fn member(&mut self, name: &str, file_sha256: &[u8; 32]) {
        use sha2::Digest;
        // Names cannot hold NUL (validated), so the framing is unambiguous.
        self.0.update(b"\0member\0");
        self.0.update(name.as_bytes());
        self.0.update(b"\0");
        self.0.update(file_sha256);
    }

    /// A member whose file was refused and whose last good version is
    /// kept: the fingerprint then differs from any set of files on disk.
    pub fn kept(&mut self, name: &str) {
        use sha2::Digest;
        self.0.update(b"\0kept\0");
        self.0.update(name.as_bytes());
    }

    pub fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(&self.0.finalize()[..8])
    }
}
