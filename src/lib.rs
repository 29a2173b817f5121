//! clawgate: a compartmentalising reverse proxy in front of a shared
//! OpenClaw Gateway.
//!
//! A request reads top to bottom through these modules:
//! `net` (accept, connection limits, PROXY v2, TLS) → `downstream` (the
//! client's HTTP, into one `message` representation) → `proxy` (the
//! phases: admit, authenticate, authorize, route, forward, respond,
//! record, judging with the `clawgate_policy` crate) → `upstream` (the
//! client to the gateway) or `tunnel` (WebSockets); `observe` logs and
//! counts. `config` loads and validates snapshots; `runtime` runs the
//! process (server, reload, admin); `cli` is the runbook.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client_ip;
pub mod config;
pub mod deny;
pub mod deny_page;
pub mod downstream;
pub mod drain;
pub mod limits;
pub mod message;
pub mod net;
pub mod observe;
pub mod prefixed;
pub mod proxy;
pub mod request_id;
pub mod runtime;
pub mod spare;
pub mod state;
pub mod tunnel;
pub mod upstream;

#[cfg(test)]
pub(crate) mod test_support;
