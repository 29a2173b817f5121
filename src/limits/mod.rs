//! Per-IP protection against callers that fail to authenticate, without
//! touching members who do: after too many failed authentications in a
//! minute an address gets 429 with `Retry-After` instead of 401 for a
//! while. A request with a valid credential always passes: a member
//! behind the same NAT as an attacker keeps working, and the 429 tells an
//! attacker nothing the 401 did not.
//!
//! (The cap on an address's unauthenticated connections is the listener's,
//! [`conn_cap`]; [`Settings`] carries its size with the rest.)

pub mod conn_cap;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once; the oldest idle ones are dropped first.
const MAX_TRACKED: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Unauthenticated connections one address may hold (at least 1;
    /// enforced by [`conn_cap`]).
    pub max_unauthenticated_per_ip: u32,
    pub auth_failures_per_minute: u32,
    pub block: Duration,
}

#[derive(Default)]
struct Entry {
    failures: u32,
    window_start: Option<Instant>,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn idle(&self, now: Instant) -> bool {
        self.blocked_until.is_none_or(|b| b <= now)
            && self
                .window_start
                .is_none_or(|w| now.duration_since(w) > WINDOW)
    }
}

#[derive(Default)]
pub struct Limiter {
    by_ip: Mutex<HashMap<IpAddr, Entry>>,
}

impl Limiter {
    /// Is `ip` blocked for failing too often? Returns the time left.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let t = self.by_ip.lock().ok()?;
        let until = t.get(&ip)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Count a failed authentication; may start a block. Returns the time
    /// left if the address is (now) blocked. One lock, one lookup.
    pub fn failed(&self, ip: IpAddr, s: &Settings) -> Option<Duration> {
        let now = Instant::now();
        let Ok(mut t) = self.by_ip.lock() else {
            return None;
        };
        if t.len() >= MAX_TRACKED {
            t.retain(|_, e| !e.idle(now));
        }
        let e = t.entry(ip).or_default();
        if let Some(until) = e.blocked_until.filter(|u| *u > now) {
            return Some(until - now);
        }
        match e.window_start {
            Some(w) if now.duration_since(w) <= WINDOW => e.failures += 1,
            _ => {
                e.window_start = Some(now);
                e.failures = 1;
            }
        }
        if e.failures > s.auth_failures_per_minute {
            e.blocked_until = Some(now + s.block);
            e.failures = 0;
            e.window_start = None;
            return Some(s.block);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            max_unauthenticated_per_ip: 2,
            auth_failures_per_minute: 3,
            block: Duration::from_secs(30),
        }
    }

    #[test]
    fn too_many_failures_block_the_address_only() {
        let l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.failed(ip, &settings()).is_none());
        }
        assert!(l.blocked(ip).is_none());
        assert!(l.failed(ip, &settings()).is_some());
        let left = l.blocked(ip).unwrap();
        assert!(left > Duration::from_secs(25) && left <= Duration::from_secs(30));
        assert!(l.blocked("192.0.2.9".parse().unwrap()).is_none());
    }
}
