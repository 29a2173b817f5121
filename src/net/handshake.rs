//! Connections to the TLS listener that fail before HTTP: why (a bounded
//! set of reasons, the label of `clawgate_tls_handshake_failures_total`),
//! the log line naming the client address (at most [`LINES`] a
//! [`WINDOW`], so a scanner cannot flood stderr), and the short answer a
//! plain-HTTP request on the TLS port gets.
//!
//! No server name is checked: the listener has one certificate and
//! serves it whatever SNI the client sends, so there is no "bad SNI".

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustls::CertificateError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::observe::metrics::Metrics;

/// Log lines per window; the failures past them are counted and named
/// (`suppressed`) in the next line that is written.
pub const LINES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);

/// Why a connection to the TLS listener failed before HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `client_auth = "required"` and the client sent no certificate.
    NoClientCert,
    /// A client certificate not issued by the member CA.
    UnknownCa,
    /// A client certificate the CA issued but that does not verify
    /// (expired, wrong usage, bad signature...).
    BadClientCert,
    /// The client aborted with an alert: most often it does not trust
    /// the server certificate.
    ClientAlert,
    /// The first bytes were a plain HTTP request.
    PlainHttp,
    /// Not TLS, or TLS the server cannot speak (versions, ciphers, a
    /// malformed message).
    Protocol,
    /// No finished handshake within `timeouts.header_read`.
    Timeout,
    /// The connection broke off mid-handshake, or another error.
    Other,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::NoClientCert,
        Reason::UnknownCa,
        Reason::BadClientCert,
        Reason::ClientAlert,
        Reason::PlainHttp,
        Reason::Protocol,
        Reason::Timeout,
        Reason::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::NoClientCert => "no_client_cert",
            Reason::UnknownCa => "unknown_ca",
            Reason::BadClientCert => "bad_client_cert",
            Reason::ClientAlert => "client_alert",
            Reason::PlainHttp => "plain_http",
            Reason::Protocol => "protocol",
            Reason::Timeout => "timeout",
            Reason::Other => "other",
        }
    }

    /// The reason for an error from the handshake.
    pub fn of(e: &io::Error) -> Reason {
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::NoCertificatesPresented) => Reason::NoClientCert,
            Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                Reason::UnknownCa
            }
            Some(rustls::Error::InvalidCertificate(_)) => Reason::BadClientCert,
            Some(rustls::Error::AlertReceived(_)) => Reason::ClientAlert,
            Some(_) => Reason::Protocol,
            None => Reason::Other,
        }
    }
}

/// A failed handshake: the reason, and what happened in words (rustls's
/// error: no secret is in it).
#[derive(Debug)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

/// Counts every failure and logs the first [`LINES`] of each [`WINDOW`].
#[derive(Default)]
pub struct FailureLog {
    budget: Mutex<Budget>,
}

#[derive(Default)]
struct Budget {
    window_start: Option<Instant>,
    logged: u32,
    /// Failures not logged since the last line.
    suppressed: u64,
}

impl FailureLog {
    /// Show every reason at 0 from the start, so a dashboard or an alert
    /// can tell "none" from "not exported".
    pub fn register(metrics: &Metrics) {
        for r in Reason::ALL {
            metrics
                .tls_handshake_failures
                .with_label_values(&[r.label()])
                .inc_by(0);
        }
    }

    pub fn record(&self, metrics: &Metrics, peer: SocketAddr, failure: &Failure) {
        let reason = failure.reason.label();
        metrics
            .tls_handshake_failures
            .with_label_values(&[reason])
            .inc();
        let suppressed = {
            let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if b.window_start
                .is_none_or(|w| now.duration_since(w) >= WINDOW)
            {
                b.window_start = Some(now);
                b.logged = 0;
            }
            if b.logged >= LINES {
                b.suppressed += 1;
                return;
            }
            b.logged += 1;
            std::mem::take(&mut b.suppressed)
        };
        tracing::warn!(%peer, reason, suppressed, "TLS handshake failed: {}", failure.detail);
    }
}

const PLAIN_HTTP_BODY: &str = "This port speaks HTTPS: use an https:// URL.\n";

/// Answer a plain-HTTP request on the TLS port with a short 400 (as
/// nginx does) and close, within a second whatever the client does.
pub async fn answer_plain_http(mut stream: TcpStream) {
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    );
    let exchange = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing with its
        // request unread would reset the connection, and the client
        // could lose the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), exchange).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_snake_case() {
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
        assert!(labels
            .iter()
            .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn rustls_errors_map_to_their_reasons() {
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let cases = [
            (rustls::Error::NoCertificatesPresented, Reason::NoClientCert),
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                Reason::UnknownCa,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                Reason::BadClientCert,
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
                Reason::ClientAlert,
            ),
            (rustls::Error::DecryptError, Reason::Protocol),
        ];
        for (e, want) in cases {
            assert_eq!(Reason::of(&wrap(e)), want);
        }
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(Reason::of(&eof), Reason::Other);
    }

    #[test]
    fn a_window_logs_at_most_its_lines_and_counts_every_failure() {
        let metrics = Metrics::new();
        let log = FailureLog::default();
        let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let f = Failure {
            reason: Reason::Protocol,
            detail: "x".into(),
        };
        for _ in 0..LINES + 5 {
            log.record(&metrics, peer, &f);
        }
        let b = log.budget.lock().unwrap();
        assert_eq!((b.logged, b.suppressed), (LINES, 5));
        let counted = metrics
            .tls_handshake_failures
            .with_label_values(&["protocol"]);
        assert_eq!(counted.get(), u64::from(LINES) + 5);
    }
}
