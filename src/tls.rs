//! TLS for the member listener: rustls server config (ALPN h2 and
//! http/1.1), optional mTLS against the member CA, and the peer certificate
//! facts identity needs (fingerprint, SANs), computed once per connection.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::config::{ClientAuth, TlsFiles};
use clawgate_policy::identity::{sha256, PeerCert};

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE block found", path.display()));
    }
    Ok(certs)
}

/// Build the member listener's rustls config from the configured files.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: cannot read a private key: {e}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match (&files.client_ca, files.client_auth) {
        (Some(ca), Some(mode)) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = match mode {
                ClientAuth::Optional => v.allow_unauthenticated(),
                ClientAuth::Required => v,
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| format!("{}: member CA: {e}", ca.display()))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{}: certificate and key do not go together: {e}",
            files.cert.display()
        )
    })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Fingerprint and SANs of a verified client certificate.
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

/// SHA-256 fingerprint of the first certificate in a PEM file, for
/// `CERT_SHA256` lines and `explain --cert`.
pub fn pem_fingerprint(path: &Path) -> Result<PeerCert, String> {
    let certs = read_certs(path)?;
    Ok(peer_cert(&certs[0]))
}
