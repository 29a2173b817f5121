//! Reaching the targets: ws:// and wss:// URLs parsed into where they
//! point, TCP from a chosen loopback source, TLS trusting `--ca`, and the
//! HTTP/1.1 upgrade.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

/// A plain or TLS byte stream: one WebSocket type for ws:// and wss://.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// A URL, where it points, and how to get there.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) addr: SocketAddr,
    /// For wss:// URLs: the client config trusting `--ca`.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

pub(crate) fn target(url: &str, ca: Option<&std::path::Path>) -> Result<Target, String> {
    let (rest, secure) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(format!("{url}: only ws:// and wss:// URLs")),
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|_| format!("{url}: expected ws://IP:PORT/..."))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url}: loopback only"));
    }
    let tls = if secure {
        let ca = ca.ok_or_else(|| format!("{url}: wss:// needs --ca"))?;
        Some(client_config(ca)?)
    } else {
        None
    };
    Ok(Target {
        url: url.to_string(),
        addr,
        tls,
    })
}

/// A rustls client config that trusts the certificates in `ca` only.
pub(crate) fn client_config(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

pub(crate) async fn connect(
    to: &Target,
    source: Option<IpAddr>,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, String> {
    let url = to.url.as_str();
    let stream = dial(to, source, None).await?;
    let mut req = url
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    if let Some(t) = token {
        let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|e| e.to_string())?;
        req.headers_mut().insert("authorization", v);
    }
    if let Some(o) = origin {
        let v = HeaderValue::from_str(o).map_err(|e| e.to_string())?;
        req.headers_mut().insert("origin", v);
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| format!("handshake {url}: {e}"))?;
    if resp.status().as_u16() != 101 {
        return Err(format!("handshake {url}: status {}", resp.status()));
    }
    Ok(ws)
}

/// TCP to `to` from `source`, with TLS for wss:// targets (offering
/// `alpn`, if given, as the only protocol).
pub(crate) async fn dial(
    to: &Target,
    source: Option<IpAddr>,
    alpn: Option<&[u8]>,
) -> Result<Box<dyn Io>, String> {
    let addr = to.addr;
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(src) = source {
        sock.bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {e}"))?;
    }
    let tcp = sock
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let Some(cfg) = &to.tls else {
        return Ok(Box::new(tcp));
    };
    let cfg = match alpn {
        Some(p) => {
            let mut c = (**cfg).clone();
            c.alpn_protocols = vec![p.to_vec()];
            Arc::new(c)
        }
        None => cfg.clone(),
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    Ok(Box::new(tls))
}
