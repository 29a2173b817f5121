//! What the certificates the config names will do to members: when each
//! expires, and which host names the server certificate is valid for.
//! `clawgate check` reports both and `/metrics` exports the expiries, so a
//! certificate that is about to lapse, or that does not cover the name a
//! member's browser uses, shows before a member's handshake fails.

use std::net::IpAddr;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use super::TlsFiles;

/// One certificate of a PEM file.
#[derive(Clone, Debug)]
pub struct CertFacts {
    pub subject: String,
    /// Unix seconds of notAfter.
    pub not_after: i64,
    /// DNS SANs, lower-cased, trailing dot removed (`*.x.com` kept as is).
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl CertFacts {
    /// The SANs as `openssl x509 -ext subjectAltName` shows them.
    pub fn sans(&self) -> String {
        let names = self.dns.iter().map(|d| format!("DNS:{d}"));
        let ips = self.ips.iter().map(|i| format!("IP:{i}"));
        let all: Vec<String> = names.chain(ips).collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }
}

/// Every certificate in the PEM file at `path`, in file order.
pub fn read_pem(path: &Path) -> Result<Vec<CertFacts>, String> {
    let ders = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if ders.is_empty() {
        return Err(format!("{}: no CERTIFICATE block found", path.display()));
    }
    ders.iter()
        .map(|der| facts(der).map_err(|e| format!("{}: not a certificate: {e}", path.display())))
        .collect()
}

fn facts(der: &CertificateDer<'_>) -> Result<CertFacts, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| e.to_string())?;
    let mut out = CertFacts {
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        dns: Vec::new(),
        ips: Vec::new(),
    };
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) => out.dns.push(normal(s)),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => out.ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap())),
                    16 => out
                        .ips
                        .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(out)
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Does a certificate with these SANs cover `host` (an origin's host:
/// `gw.example.com`, `*.example.com` for a wildcard origin, `127.0.0.1`,
/// `[::1]`)? As browsers judge it: an IP host needs an IP SAN (a DNS SAN
/// spelling the address does not count); a name needs an equal DNS SAN or
/// a wildcard SAN `*.rest` standing for exactly one label; a wildcard
/// origin needs the same wildcard SAN, since it lets in every such label.
pub fn covers(cert: &CertFacts, host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return cert.ips.contains(&ip);
    }
    let host = normal(host);
    cert.dns.iter().any(|san| {
        *san == host
            || (!host.starts_with("*.")
                && san.strip_prefix("*.").is_some_and(|rest| {
                    host.split_once('.')
                        .is_some_and(|(label, tail)| !label.is_empty() && tail == rest)
                }))
    })
}

/// The certificate files `[listen]` names, by role (`server`,
/// `client_ca`): the role is the bounded label `/metrics` uses.
pub fn files(tls: &TlsFiles) -> Vec<(&'static str, &Path)> {
    let mut out = vec![("server", tls.cert.as_path())];
    if let Some(ca) = &tls.client_ca {
        out.push(("client_ca", ca.as_path()));
    }
    out
}

/// Which `[listen]` key a TLS setup error (which starts with the path
/// of the file at fault) is about, so the error names that key's line.
pub fn listen_key(tls: &TlsFiles, why: &str) -> &'static str {
    let about = |p: &Path| why.starts_with(&p.display().to_string());
    if tls.client_ca.as_deref().is_some_and(about) {
        "listen.client_ca"
    } else if about(&tls.key) {
        "listen.tls_key"
    } else {
        "listen.tls_cert"
    }
}

/// For each readable certificate file: its role and the earliest notAfter
/// among its certificates (the one that bites first).
pub fn expiries(tls: Option<&TlsFiles>) -> Vec<(&'static str, i64)> {
    let Some(tls) = tls else {
        return Vec::new();
    };
    files(tls)
        .into_iter()
        .filter_map(|(role, path)| {
            let certs = read_pem(path).ok()?;
            Some((role, certs.iter().map(|c| c.not_after).min()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dns: &[&str], ips: &[&str]) -> CertFacts {
        CertFacts {
            subject: "CN=t".into(),
            not_after: 0,
            dns: dns.iter().map(|d| d.to_string()).collect(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        let c = cert(&["gw.example.com", "*.apps.example.com", "localhost"], &[]);
        assert!(covers(&c, "gw.example.com"));
        assert!(covers(&c, "GW.example.com."));
        assert!(covers(&c, "localhost"));
        assert!(covers(&c, "a.apps.example.com"));
        assert!(!covers(&c, "apps.example.com"));
        assert!(!covers(&c, "a.b.apps.example.com"));
        assert!(!covers(&c, "example.com"));
        assert!(covers(&c, "*.apps.example.com"));
        assert!(!covers(&c, "*.example.com"));
    }

    #[test]
    fn addresses_need_ip_sans() {
        let c = cert(&["127.0.0.1"], &["::1"]);
        assert!(!covers(&c, "127.0.0.1"));
        assert!(covers(&c, "[::1]"));
        assert!(!covers(&c, "localhost"));
        assert_eq!(c.sans(), "DNS:127.0.0.1, IP:::1");
    }
}
