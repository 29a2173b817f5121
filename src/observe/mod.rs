//! What clawgate tells its operator about the traffic: the access log's
//! JSON line per request (`access_log`), the denial line on stderr
//! (`deny_log`), both queued off the request path and written by
//! `log_writer/`; Prometheus metrics (`metrics`); and the allowlist
//! entries a refused member would need (`suggest`).

pub mod access_log;
pub mod deny_log;
pub mod log_writer;
pub mod metrics;
pub mod suggest;
