//! Prometheus metrics, served by the admin listener.
//!
//! Names and labels are the contract in DESIGN.md. Label values are bounded:
//! member names come from config (`-` for unidentified callers), reasons
//! from the closed `clawgate_policy::Reason` set, codes from HTTP status codes.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Label for callers no member could be matched to.
pub const NO_MEMBER: &str = "-";
/// Label for requests that never reached an upstream.
pub const NO_UPSTREAM: &str = "-";

/// Counts one open client connection in the gauge until dropped. A
/// WebSocket tunnel holds its own, since the hyper connection that carried
/// the upgrade ends when it hands the socket over.
pub struct OpenConn(IntGauge);

impl OpenConn {
    pub fn count(gauge: &IntGauge) -> OpenConn {
        gauge.inc();
        OpenConn(gauge.clone())
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub denials: IntCounterVec,
    pub audit_would_deny: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub websockets_open: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub token_last_used: IntGaugeVec,
    pub member_last_allowed: IntGaugeVec,
    pub member_last_denial: IntGaugeVec,
    pub connections_open: IntGauge,
    pub member_files_refused: IntGauge,
    pub revoked_connections: IntCounterVec,
    pub tls_handshake_failures: IntCounterVec,
    pub access_log_dropped: IntGauge,
    pub tls_cert_expiry: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let requests = counter(
            "clawgate_requests_total",
            "Requests answered, by member, upstream and HTTP status code.",
            &["member", "upstream", "code"],
        );
        let denials = counter(
            "clawgate_denials_total",
            "Requests refused by clawgate, by member and reason code.",
            &["member", "reason"],
        );
        let audit_would_deny = counter(
            "clawgate_audit_would_deny_total",
            "Requests of MODE=audit members that enforce mode would have refused.",
            &["member", "reason"],
        );
        let config_reloads = counter(
            "clawgate_config_reloads_total",
            "Configuration reloads, by result (ok; partial: some member files refused, the rest applied; error).",
            &["result"],
        );
        let upstream_errors = counter(
            "clawgate_upstream_errors_total",
            "Failed upstream exchanges, by upstream and kind (connect_refused, connect_timeout, response_timeout, reset, ...).",
            &["upstream", "kind"],
        );
        let revoked_connections = counter(
            "clawgate_revoked_connections_total",
            "Open connections closed because a reload or expiry revoked them, by member and reason.",
            &["member", "reason"],
        );
        let tls_handshake_failures = counter(
            "clawgate_tls_handshake_failures_total",
            "Client connections to the TLS listener that failed before HTTP, by reason.",
            &["reason"],
        );
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "clawgate_upstream_request_duration_seconds",
                "Time from sending a request upstream to its response headers.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["upstream"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(upstream_duration.clone()))
            .expect("unique metric");
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let websockets_open = gauge_vec(
            "clawgate_websockets_open",
            "WebSocket connections currently proxied, by member.",
            &["member"],
        );
        let token_last_used = gauge_vec(
            "clawgate_token_last_used_timestamp_seconds",
            "Unix time a token (by its public token ID, never the token) was last used.",
            &["member", "token_id"],
        );
        let member_last_allowed = gauge_vec(
            "clawgate_member_last_allowed_timestamp_seconds",
            "Unix time a member's request was last let through (allowed, or passed in audit mode).",
            &["member"],
        );
        let member_last_denial = gauge_vec(
            "clawgate_member_last_denial_timestamp_seconds",
            "Unix time a member's request was last refused, by reason.",
            &["member", "reason"],
        );
        let tls_cert_expiry = gauge_vec(
            "clawgate_tls_cert_expiry_timestamp_seconds",
            "Unix time the first certificate of each [listen] file expires, by role (server, client_ca).",
            &["role"],
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let connections_open = gauge(
            "clawgate_connections_open",
            "Client connections currently open on the member listener.",
        );
        let member_files_refused = gauge(
            "clawgate_config_member_files_refused",
            "Member files the last reload refused (each keeps its last good version, or is left out when new).",
        );
        let access_log_dropped = gauge(
            "clawgate_access_log_dropped_lines",
            "Access-log lines dropped because the writer could not keep up.",
        );
        Metrics {
            registry,
            requests,
            denials,
            audit_would_deny,
            upstream_duration,
            websockets_open,
            config_reloads,
            upstream_errors,
            token_last_used,
            member_last_allowed,
            member_last_denial,
            connections_open,
            member_files_refused,
            revoked_connections,
            tls_handshake_failures,
            access_log_dropped,
            tls_cert_expiry,
        }
    }

    /// Set the certificate expiry gauge to exactly these (role, notAfter)
    /// pairs: a role no longer configured disappears.
    pub fn set_cert_expiries(&self, expiries: &[(&str, i64)]) {
        self.tls_cert_expiry.reset();
        for (role, at) in expiries {
            self.tls_cert_expiry.with_label_values(&[*role]).set(*at);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
