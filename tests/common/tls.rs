//! TLS for tests: an rcgen PKI (member CA, server certificate for
//! 127.0.0.1/localhost, member client certificates, an unrelated CA), the
//! `[listen]` lines that use it, and rustls clients speaking HTTP/1.1 or h2
//! over a real socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Reply;

const WAIT: Duration = Duration::from_secs(10);

/// A certificate authority: its certificate and the key that signs.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        Ca::new_with(name, |_| {})
    }

    fn new_with(name: &str, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn issue_client(&self, cn: &str, sans: Vec<SanType>) -> ClientCert {
        self.issue_client_with(cn, sans, |_| {})
    }

    /// A client certificate whose parameters `edit` may change (validity,
    /// key usages) before it is signed.
    fn issue_client_with(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        ClientCert {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A client certificate and its key.
pub struct ClientCert {
    pub cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl ClientCert {
    /// The value for a member's `CERT_SHA256`.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.cert.as_ref()))
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

/// The member CA plus a server certificate for 127.0.0.1 and localhost,
/// written as PEM files into a temp dir of their own.
pub struct Pki {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::with(&["127.0.0.1", "localhost"], |_| {}, |_| {})
    }

    /// A PKI whose server certificate has the SANs `names` (an address is
    /// an IP SAN), and whose server and CA certificates `server` and `ca`
    /// may edit before signing (validity).
    pub fn with(
        names: &[&str],
        server: impl FnOnce(&mut CertificateParams),
        ca: impl FnOnce(&mut CertificateParams),
    ) -> Pki {
        let ca = Ca::new_with("clawgate test member CA", ca);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "clawgate test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        Pki { ca, dir }
    }

    /// `server.pem`, `server.key` or `ca.pem`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Copy the server certificate and key to `dir/server.pem` and
    /// `dir/server.key` (for rotation tests).
    pub fn install_server_files(&self, dir: &std::path::Path) {
        std::fs::copy(self.file("server.pem"), dir.join("server.pem")).unwrap();
        std::fs::copy(self.file("server.key"), dir.join("server.key")).unwrap();
    }

    /// `[listen]` lines for TLS without client certificates.
    pub fn listen_tls(&self) -> String {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            self.file("server.pem").display(),
            self.file("server.key").display()
        )
    }

    /// `[listen]` lines for TLS with mTLS: `client_auth` is "optional" or
    /// "required".
    pub fn listen_mtls(&self, client_auth: &str) -> String {
        format!(
            "{}client_ca = \"{}\"\nclient_auth = \"{client_auth}\"\n",
            self.listen_tls(),
            self.file("ca.pem").display()
        )
    }

    /// A member client certificate signed by the member CA.
    pub fn client(&self, cn: &str, sans: Vec<SanType>) -> ClientCert {
        self.ca.issue_client(cn, sans)
    }

    /// A client certificate signed by the member CA but edited first:
    /// validity in the past or future, a server-only key usage.
    pub fn client_with(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> ClientCert {
        self.ca.issue_client_with(cn, sans, edit)
    }

    /// A client certificate from a CA clawgate was never told about.
    pub fn unrelated_client(cn: &str) -> ClientCert {
        Ca::new("some other CA").issue_client(cn, Vec::new())
    }

    /// A rustls client that trusts the server certificate, offers `alpn`,
    /// and presents `cert` when asked.
    pub fn client_config(&self, cert: Option<&ClientCert>, alpn: &[&str]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.cert.der().clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let mut cfg = match cert {
            Some(c) => builder
                .with_client_auth_cert(vec![c.cert.clone()], c.key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(cfg)
    }
}

/// Make a certificate expire at `unix` (seconds).
pub fn expire_at(params: &mut CertificateParams, unix: u64) {
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(unix);
}

pub fn dns_san(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

pub fn email_san(addr: &str) -> SanType {
    SanType::Rfc822Name(addr.try_into().unwrap())
}

/// TCP connect and TLS handshake to `addr` as "localhost" (bounded).
pub async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, TlsConnector::from(cfg).connect(name, tcp))
        .await
        .expect("TLS handshake finishes within 10s")
}

/// Connect with `cfg` and send a request that would succeed (`token`,
/// `Connection: close`); return how the server refused, or panic if any
/// response byte arrives. Under TLS 1.3 the client's side of the handshake
/// completes before the server has judged its certificate, so the refusal
/// may arrive as an alert on the first read.
pub async fn tls_refusal(addr: SocketAddr, cfg: Arc<ClientConfig>, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match tls_connect(addr, cfg).await {
        Err(e) => return e.to_string(),
        Ok(s) => s,
    };
    let req = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    let exchange = async {
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.map(|_| buf)
    };
    match tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the server answers or closes within 10s")
    {
        Err(e) => e.to_string(),
        Ok(buf) => {
            assert!(
                buf.is_empty(),
                "the server answered a refused handshake: {}",
                String::from_utf8_lossy(&buf)
            );
            "closed without a response".into()
        }
    }
}

/// The ALPN protocol the server picked.
pub fn alpn(s: &TlsStream<TcpStream>) -> Option<String> {
    s.get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Send one GET over an established TLS stream, as HTTP/1.1 or h2 (the
/// version must match what ALPN picked). Returns the streaming response.
pub async fn send_get(
    stream: TlsStream<TcpStream>,
    version: Version,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Result<Response<Incoming>> {
    let port = stream.get_ref().0.peer_addr().unwrap().port();
    let io = TokioIo::new(stream);
    let mut b = Request::builder().method("GET").version(version);
    b = if version == Version::HTTP_2 {
        b.uri(format!("https://localhost:{port}{path}"))
    } else {
        b.uri(path).header("host", format!("localhost:{port}"))
    };
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::<Bytes>::new()).unwrap();
    let fut = async {
        if version == Version::HTTP_2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            send.send_request(req).await
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            send.send_request(req).await
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("response within 10s")
}

/// Read a response to the end (bounded).
pub async fn read_reply(resp: Response<Incoming>) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("body within 10s")
        .expect("body reads")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Connect with `cfg`, expect ALPN to pick `version`, send one GET, read it.
pub async fn https_get(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    version: Version,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = tls_connect(addr, cfg)
        .await
        .expect("TLS handshake succeeds");
    let want = if version == Version::HTTP_2 {
        "h2"
    } else {
        "http/1.1"
    };
    assert_eq!(alpn(&stream).as_deref(), Some(want), "ALPN");
    let resp = send_get(stream, version, path, headers)
        .await
        .expect("request succeeds at the HTTP level");
    assert_eq!(resp.version(), version);
    read_reply(resp).await
}
