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
//!
//! At the cap a new connection is still accepted, and the address's
//! oldest unauthenticated one is closed instead (as nginx's and Envoy's
//! overload handling prefers fresh connections): a flood cannot pin the
//! slots, so a member opening a connection behind the same address is
//! served, while the flood's own sockets stay at the cap.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Most addresses tracked at once; the oldest idle ones are dropped first.
const MAX_TRACKED: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Unauthenticated connections one address may hold (at least 1).
    pub max_unauthenticated_per_ip: u32,
    pub auth_failures_per_minute: u32,
    pub block: Duration,
}

#[derive(Default)]
struct Entry {
    /// Unauthenticated connections, oldest first, by claim ID (ascending),
    /// each with the sender that evicts it.
    unauthenticated: VecDeque<(u64, oneshot::Sender<()>)>,
    failures: u32,
    window_start: Option<Instant>,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn idle(&self, now: Instant) -> bool {
        self.unauthenticated.is_empty()
            && self.blocked_until.is_none_or(|b| b <= now)
            && self
                .window_start
                .is_none_or(|w| now.duration_since(w) > WINDOW)
    }
}

#[derive(Default)]
struct Table {
    by_ip: HashMap<IpAddr, Entry>,
    /// The next claim's ID: increasing, so each address's queue stays
    /// sorted, and never reused, so a stale claim releases nothing.
    next_id: u64,
}

/// One connection's hold on an unauthenticated slot of its address,
/// until it identifies, closes or is evicted.
pub struct Claim {
    ip: IpAddr,
    id: u64,
    held: AtomicBool,
}

impl Claim {
    /// A connection the cap does not count (from a trusted proxy).
    pub fn exempt(ip: IpAddr) -> Claim {
        Claim {
            ip,
            id: u64::MAX,
            held: AtomicBool::new(false),
        }
    }

    /// Give the slot back (once; later calls cost an atomic load).
    pub fn release(&self, limiter: &Limiter) {
        if self.held.load(Ordering::Relaxed) && self.held.swap(false, Ordering::AcqRel) {
            limiter.release_unauthenticated(self);
        }
    }
}

#[derive(Default)]
pub struct Limiter {
    table: Mutex<Table>,
}

impl Limiter {
    /// A new connection from `ip`: its claim, and a receiver that resolves
    /// `Ok` when a newer connection from the same address evicts it (and
    /// `Err` once the claim is released, when eviction no longer applies).
    pub fn open_unauthenticated(&self, ip: IpAddr, s: &Settings) -> (Claim, oneshot::Receiver<()>) {
        let (evict, evicted) = oneshot::channel();
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.by_ip.len() >= MAX_TRACKED {
            let now = Instant::now();
            t.by_ip.retain(|_, e| !e.idle(now));
        }
        let id = t.next_id;
        t.next_id += 1;
        let e = t.by_ip.entry(ip).or_default();
        // A loop, not an `if`: a reload may have lowered the cap.
        while e.unauthenticated.len() >= s.max_unauthenticated_per_ip.max(1) as usize {
            if let Some((_, oldest)) = e.unauthenticated.pop_front() {
                let _ = oldest.send(());
            }
        }
        e.unauthenticated.push_back((id, evict));
        let claim = Claim {
            ip,
            id,
            held: AtomicBool::new(true),
        };
        (claim, evicted)
    }

    /// The connection carried an identified request, or closed.
    fn release_unauthenticated(&self, claim: &Claim) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = t.by_ip.get_mut(&claim.ip) else {
            return;
        };
        // Absent when the claim was evicted.
        let released = match e
            .unauthenticated
            .binary_search_by_key(&claim.id, |(id, _)| *id)
        {
            Ok(i) => e.unauthenticated.remove(i),
            Err(_) => None,
        };
        if e.idle(Instant::now()) {
            t.by_ip.remove(&claim.ip);
        }
        drop(t);
        drop(released);
    }

    /// Is `ip` blocked for failing too often? Returns the time left.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let t = self.table.lock().ok()?;
        let until = t.by_ip.get(&ip)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Count a failed authentication; may start a block. Returns the time
    /// left if the address is (now) blocked. One lock, one lookup.
    pub fn failed(&self, ip: IpAddr, s: &Settings) -> Option<Duration> {
        let now = Instant::now();
        let Ok(mut t) = self.table.lock() else {
            return None;
        };
        let e = t.by_ip.entry(ip).or_default();
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
    fn at_the_cap_the_oldest_unauthenticated_connection_is_evicted() {
        let l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let (a, mut a_evicted) = l.open_unauthenticated(ip, &settings());
        let (_b, mut b_evicted) = l.open_unauthenticated(ip, &settings());
        let (_o, mut o_evicted) = l.open_unauthenticated(other, &settings());
        assert!(a_evicted.try_recv().is_err());
        // The third from `ip` evicts the oldest, `a`, and nothing else.
        let (_c, mut c_evicted) = l.open_unauthenticated(ip, &settings());
        assert_eq!(a_evicted.try_recv(), Ok(()));
        assert!(b_evicted.try_recv().is_err());
        assert!(c_evicted.try_recv().is_err());
        assert!(o_evicted.try_recv().is_err());
        // Releasing an evicted claim frees nobody else's slot.
        a.release(&l);
        assert_eq!(l.table.lock().unwrap().by_ip[&ip].unauthenticated.len(), 2);
    }

    #[test]
    fn a_released_claim_is_no_longer_evicted_and_its_address_forgotten() {
        let l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (a, mut a_evicted) = l.open_unauthenticated(ip, &settings());
        let (b, _b_evicted) = l.open_unauthenticated(ip, &settings());
        a.release(&l);
        a.release(&l);
        // Closed, not evicted: the sender went with the slot.
        assert_eq!(
            a_evicted.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
        let (_c, mut c_evicted) = l.open_unauthenticated(ip, &settings());
        assert!(c_evicted.try_recv().is_err());
        b.release(&l);
        assert_eq!(l.table.lock().unwrap().by_ip[&ip].unauthenticated.len(), 1);
        assert!(!Claim::exempt(ip).held.load(Ordering::Relaxed));
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
