//! The TLS handshake at the member listener: bounded by `header_read`,
//! it yields the stream (or why there is none, `handshake`), the protocol ALPN chose (if the client offered
//! any), and the facts identity needs of a verified client certificate
//! (fingerprint, SANs), computed once per connection. The server config
//! itself (certificates, CA, the ALPN offer) is read with the rest of the
//! configuration (`config::tls`) and handed in.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use x509_parser::extensions::GeneralName;

use super::handshake::{Failure, Reason};
use crate::downstream::Protocol;
use clawgate_policy::identity::{sha256, PeerCert};

/// A finished handshake.
pub struct Accepted<IO> {
    pub stream: TlsStream<IO>,
    /// What ALPN settled, or `None` when the client offered nothing (the
    /// first bytes then decide, as on a plain connection).
    pub protocol: Option<Protocol>,
    pub cert: Option<PeerCert>,
}

/// How a connection that did not finish a handshake ended.
pub enum Refused {
    /// The first bytes were a plain HTTP request: the socket, to answer.
    PlainHttp(TcpStream),
    Failed(Failure),
    /// Closed before sending a byte (a port check): nothing to count.
    Silent,
}

/// The first byte of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Run the server side of the handshake on `stream`, within `timeout`.
pub async fn accept(
    cfg: Arc<ServerConfig>,
    stream: TcpStream,
    timeout: Duration,
) -> Result<Accepted<TcpStream>, Refused> {
    let handshake = async {
        // A peek, so a plain-HTTP request is told apart before rustls
        // reads it (and answers it with a TLS alert).
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(Refused::Silent),
            Ok(_) if first[0] == HANDSHAKE_RECORD => {}
            Ok(_) if first[0].is_ascii_uppercase() => return Err(Refused::PlainHttp(stream)),
            Ok(_) => return Err(failed(Reason::Protocol, "not a TLS handshake".into())),
            Err(e) => return Err(failed(Reason::Other, e.to_string())),
        }
        let accept = TlsAcceptor::from(cfg).accept(stream);
        accept
            .await
            .map_err(|e| failed(Reason::of(&e), e.to_string()))
    };
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(refused)) => return Err(refused),
        Err(_) => {
            let why = "no handshake within timeouts.header_read".into();
            return Err(failed(Reason::Timeout, why));
        }
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

fn failed(reason: Reason, detail: String) -> Refused {
    Refused::Failed(Failure { reason, detail })
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
