//! The running process: `server` ties it together (listeners, signals,
//! drain), `reload` swaps in a new configuration and re-judges what is
//! open, `admin` serves metrics and health on the admin listener.

pub mod admin;
pub mod reload;
pub mod server;
