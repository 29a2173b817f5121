//! The per-IP cap on connections that have not yet carried an identified
//! request, so one address cannot hold thousands of idle sockets.
//!
//! At the cap a new connection is still accepted, and the address's
//! oldest unauthenticated one is closed instead (as nginx's and Envoy's
//! overload handling prefers fresh connections): a flood cannot pin the
//! slots, so a member opening a connection behind the same address is
//! served, while the flood's own sockets stay at the cap. A connection
//! gives its slot back at its first identified request (`proxy::Conn`)
//! or when it closes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[derive(Default)]
struct Table {
    /// Unauthenticated connections per address, oldest first, by claim
    /// ID (ascending), each with the sender that evicts it. An address
    /// with none is removed, so the table holds open connections only.
    by_ip: HashMap<IpAddr, VecDeque<(u64, oneshot::Sender<()>)>>,
    /// The next claim's ID: increasing, so each address's queue stays
    /// sorted, and never reused, so a stale claim releases nothing.
    next_id: u64,
}

/// The table of unauthenticated connections, one per listener.
#[derive(Default)]
pub struct ConnCap {
    table: Mutex<Table>,
}

/// One connection's hold on an unauthenticated slot of its address,
/// until it identifies, closes or is evicted.
pub struct Claim {
    /// `None` for a connection the cap does not count.
    cap: Option<Arc<ConnCap>>,
    ip: IpAddr,
    id: u64,
    held: AtomicBool,
}

impl Claim {
    /// A connection the cap does not count (from a trusted proxy).
    pub fn exempt(ip: IpAddr) -> Claim {
        Claim {
            cap: None,
            ip,
            id: u64::MAX,
            held: AtomicBool::new(false),
        }
    }

    /// Give the slot back (once; later calls cost an atomic load).
    pub fn release(&self) {
        if self.held.load(Ordering::Relaxed) && self.held.swap(false, Ordering::AcqRel) {
            if let Some(cap) = &self.cap {
                cap.release(self);
            }
        }
    }
}

impl ConnCap {
    /// A new connection from `ip`, which may hold at most `max` (at least
    /// 1): its claim, and a receiver that resolves `Ok` when a newer
    /// connection from the same address evicts it (and `Err` once the
    /// claim is released, when eviction no longer applies).
    pub fn open(self: &Arc<Self>, ip: IpAddr, max: u32) -> (Claim, oneshot::Receiver<()>) {
        let (evict, evicted) = oneshot::channel();
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let id = t.next_id;
        t.next_id += 1;
        let queue = t.by_ip.entry(ip).or_default();
        // A loop, not an `if`: a reload may have lowered the cap.
        while queue.len() >= max.max(1) as usize {
            if let Some((_, oldest)) = queue.pop_front() {
                let _ = oldest.send(());
            }
        }
        queue.push_back((id, evict));
        let claim = Claim {
            cap: Some(self.clone()),
            ip,
            id,
            held: AtomicBool::new(true),
        };
        (claim, evicted)
    }

    /// The connection carried an identified request, or closed.
    fn release(&self, claim: &Claim) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = t.by_ip.get_mut(&claim.ip) else {
            return;
        };
        // Absent when the claim was evicted.
        let released = match queue.binary_search_by_key(&claim.id, |(id, _)| *id) {
            Ok(i) => queue.remove(i),
            Err(_) => None,
        };
        if queue.is_empty() {
            t.by_ip.remove(&claim.ip);
        }
        drop(t);
        drop(released);
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let t = self.table.lock().unwrap();
        t.by_ip.get(&ip).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_unauthenticated_connection_is_evicted() {
        let cap = Arc::new(ConnCap::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let (a, mut a_evicted) = cap.open(ip, 2);
        let (_b, mut b_evicted) = cap.open(ip, 2);
        let (_o, mut o_evicted) = cap.open(other, 2);
        assert!(a_evicted.try_recv().is_err());
        // The third from `ip` evicts the oldest, `a`, and nothing else.
        let (_c, mut c_evicted) = cap.open(ip, 2);
        assert_eq!(a_evicted.try_recv(), Ok(()));
        assert!(b_evicted.try_recv().is_err());
        assert!(c_evicted.try_recv().is_err());
        assert!(o_evicted.try_recv().is_err());
        // Releasing an evicted claim frees nobody else's slot.
        a.release();
        assert_eq!(cap.held(ip), 2);
    }

    #[test]
    fn a_released_claim_is_no_longer_evicted_and_its_address_forgotten() {
        let cap = Arc::new(ConnCap::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (a, mut a_evicted) = cap.open(ip, 2);
        let (b, _b_evicted) = cap.open(ip, 2);
        a.release();
        a.release();
        // Closed, not evicted: the sender went with the slot.
        assert_eq!(
            a_evicted.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
        let (c, mut c_evicted) = cap.open(ip, 2);
        assert!(c_evicted.try_recv().is_err());
        b.release();
        assert_eq!(cap.held(ip), 1);
        c.release();
        assert!(cap.table.lock().unwrap().by_ip.is_empty());
        assert!(!Claim::exempt(ip).held.load(Ordering::Relaxed));
    }
}
