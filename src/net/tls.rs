//! The TLS handshake at the member listener: bounded by `header_read`,
//! it yields the stream, the protocol ALPN chose (if the client offered
//! any), and the facts identity needs of a verified client certificate
//! (fingerprint, SANs), computed once per connection. The server config
//! itself (certificates, CA, the ALPN offer) is read with the rest of the
//! configuration (`config::tls`) and handed in.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use x509_parser::extensions::GeneralName;

use super::Protocol;
use crate::identity::{sha256, PeerCert};

/// A finished handshake.
pub struct Accepted<IO> {
    pub stream: TlsStream<IO>,
    /// What ALPN settled, or `None` when the client offered nothing (the
    /// first bytes then decide, as on a plain connection).
    pub protocol: Option<Protocol>,
    pub cert: Option<PeerCert>,
}

/// Run the server side of the handshake on `io`, within `timeout`.
pub async fn accept<IO>(
    cfg: Arc<ServerConfig>,
    io: IO,
    timeout: Duration,
) -> Result<Accepted<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = TlsAcceptor::from(cfg).accept(io);
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        Err(_) => return Err("TLS handshake timed out".into()),
    };
    let session = stream.get_ref().1;
    let protocol = session.alpn_protocol().map(|p| match p {
        b"h2" => Protocol::H2,
        _ => Protocol::Http1,
    });
    let cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(peer_cert);
    Ok(Accepted {
        stream,
        protocol,
        cert,
    })
}

/// Fingerprint and SANs of a client certificate.
pub fn peer_cert(der: &CertificateDer<'_>) -> PeerCert {
    let mut sans = Vec::new();
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) {
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                        sans.push((*s).to_string())
                    }
                    _ => {}
                }
            }
        }
    }
    PeerCert {
        sha256: sha256(der.as_ref()),
        sans,
    }
}
