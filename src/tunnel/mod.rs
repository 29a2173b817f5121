//! Tunnels: connections that outlive their request. WebSockets (HTTP/1.1
//! upgrades and RFC 8441 streams) are relayed byte for byte, never
//! rewritten, because OpenClaw signs its connect frame; event streams are
//! watched. Both are registered so a reload, an expiry or a drain can end
//! them.
//!
//! - [`registry`]: every open tunnel and what authorized it.
//! - [`relay`]: a WebSocket's bytes copied both ways, and how it ended.

pub mod registry;
pub mod relay;

pub use registry::{Tunnels, DRAIN_DEADLINE, GOING_AWAY};
