//! The network edge: what happens to a client's socket before any HTTP.
//! `listener` accepts (the process-wide connection limit, the per-IP
//! cap on unauthenticated connections from `limits::conn_cap`, a PROXY v2
//! header in `proxy_protocol`, the TLS handshake in `tls`, its failures
//! counted and logged in `handshake`), settles the connection's
//! `downstream::Protocol` once, and hands it to `downstream`. Nothing
//! below imports this module.

pub mod handshake;
pub mod listener;
pub mod proxy_protocol;
pub mod tls;
