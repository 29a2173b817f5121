//! clawgate: a compartmentalising reverse proxy in front of a shared
//! OpenClaw Gateway.
//!
//! A request reads top to bottom through these modules:
//! `net` (accept, connection limits, PROXY v2, TLS, the protocol) →
//! `downstream` (the client's HTTP) → `proxy` (request ID, `client_ip`,
//! then identity and policy from the `clawgate_policy` crate, forward) →
//! `access_log` + `metrics`; `deny` turns the policy's refusals into
//! responses.
//! `config` loads and validates snapshots; `reload` swaps them;
//! `server` ties the process together; `cli` is the runbook.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod deny;
pub mod deny_log;
pub mod deny_page;
pub mod downstream;
pub mod drain;
pub mod limits;
pub mod log_writer;
pub mod metrics;
pub mod net;
pub mod prefixed;
pub mod proxy;
pub mod raw_tcp;
pub mod reload;
pub mod request_id;
pub mod server;
pub mod spare;
pub mod state;
pub mod suggest;
pub mod tunnel;

#[cfg(test)]
pub(crate) mod test_support;
