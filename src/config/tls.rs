//! The member listener's TLS material, read from the configured files at
//! load time (so a bad PEM fails the load, for `check` as for `reload`):
//! the rustls server config with its ALPN offer and optional mTLS against
//! the member CA. The handshake itself is `net::tls`'s.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ClientAuth, TlsFiles};

/// The protocols offered in ALPN, preferred first. `net::tls` reads the
/// one negotiated as the connection's protocol.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

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

/// The first certificate in a PEM file (for `CERT_SHA256` lines and
/// `explain --cert`, which fingerprint it with `net::tls::peer_cert`).
pub fn first_cert(path: &Path) -> Result<CertificateDer<'static>, String> {
    let mut certs = read_certs(path)?;
    Ok(certs.swap_remove(0))
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
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}
