//! clawgate's policy: who a caller is and what they may reach, as plain
//! data and pure functions (no I/O, no async runtime, no TLS stack).
//!
//! - [`member`]: a compartment (credentials, origins, egress CIDRs, mode);
//!   [`origin`] and [`cidr`] are its allowlists.
//! - [`identity`]: the credential index (certificate, token) a request is
//!   identified by; [`session`]: browser session cookies.
//! - [`authorize`]: an identified member's request allowed or refused, and
//!   the diff a refusal carries.
//! - [`Reason`]: every refusal, one closed set.
//! - [`target`]: the request path as the gateway will route on it.
//!
//! The same functions answer live requests, the re-check of open
//! WebSockets and event streams, and `clawgate explain`.
#![forbid(unsafe_code)]

pub mod authorize;
pub mod cidr;
pub mod explain;
pub mod identity;
pub mod member;
pub mod origin;
mod reason;
pub mod recheck;
pub mod rules;
pub mod session;
pub mod target;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use reason::Reason;
