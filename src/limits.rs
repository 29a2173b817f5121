//! Per-IP protection against abusive callers, without touching members
//! who authenticate.
//!
//! Two things are limited per client IP: connections that have not yet
//! carried an identified request (so one address cannot hold thousands of
//! idle sockets), and failed authentications (after too many in a minute
//! the address gets 429 with `Retry-After` instead of 401 for a while).
//! A request with a valid credential always passes: a member behind the
//! same NAT as an attacker keeps working, and the 429 tells an attacker
//! nothing the 401 did not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once; the oldest idle ones are dropped first.
const MAX_TRACKED: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_unauthenticated_per_ip: u32,
    pub auth_failures_per_minute: u32,
    pub block: Duration,
}

#[derive(Default)]
struct Entry {
    unauthenticated: u32,
    failures: u32,
    window_start: Option<Instant>,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn idle(&self, now: Instant) -> bool {
        self.unauthenticated == 0
            && self.blocked_until.is_none_or(|b| b <= now)
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
    /// A new connection from `ip`: false means refuse it.
    pub fn open_unauthenticated(&self, ip: IpAddr, s: &Settings) -> bool {
        let Ok(mut m) = self.by_ip.lock() else {
            return true;
        };
        if m.len() >= MAX_TRACKED {
            let now = Instant::now();
            m.retain(|_, e| !e.idle(now));
        }
        let e = m.entry(ip).or_default();
        if e.unauthenticated >= s.max_unauthenticated_per_ip {
            return false;
        }
        e.unauthenticated += 1;
        true
    }

    /// The connection carried an identified request, or closed.
    pub fn release_unauthenticated(&self, ip: IpAddr) {
        if let Ok(mut m) = self.by_ip.lock() {
            if let Some(e) = m.get_mut(&ip) {
                e.unauthenticated = e.unauthenticated.saturating_sub(1);
                if e.idle(Instant::now()) {
                    m.remove(&ip);
                }
            }
        }
    }

    /// Is `ip` blocked for failing too often? Returns the time left.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let m = self.by_ip.lock().ok()?;
        let until = m.get(&ip)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Count a failed authentication; may start a block. Returns the time
    /// left if the address is (now) blocked. One lock, one lookup.
    pub fn failed(&self, ip: IpAddr, s: &Settings) -> Option<Duration> {
        let now = Instant::now();
        let Ok(mut m) = self.by_ip.lock() else {
            return None;
        };
        let e = m.entry(ip).or_default();
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
    fn unauthenticated_connections_are_capped_per_ip() {
        let l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.open_unauthenticated(ip, &settings()));
        assert!(l.open_unauthenticated(ip, &settings()));
        assert!(!l.open_unauthenticated(ip, &settings()));
        assert!(l.open_unauthenticated(other, &settings()));
        l.release_unauthenticated(ip);
        assert!(l.open_unauthenticated(ip, &settings()));
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
