//! Idle gateway connections, pooled per upstream and compartment: a
//! member's requests reuse only connections that carried that member's
//! earlier requests, and public routes have a pool of their own. A gateway
//! that answers out of step (a stray response written after a complete
//! one) can then only mislead the compartment it was already talking to;
//! `conn::Pool` also closes a connection with unread bytes.
//!
//! A pool is found on every request: a scan of the few upstreams, then
//! one hash lookup by member name (names, not indices: a reload renumbers
//! members, and a pool must never pass from one member to another). Now
//! and then a request also sweeps every pool, so a member who went quiet
//! does not leave connections the gateway closed (each an open file in
//! CLOSE_WAIT) behind, and an emptied member pool is forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::conn::Pool;

/// How often the pools are swept (a gateway's keep-alive timeout, Node's
/// 5 s, closes most idle connections well before).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One upstream's pools.
struct Upstream {
    authority: String,
    public: Arc<Pool>,
    members: HashMap<Box<str>, Arc<Pool>>,
}

impl Upstream {
    fn pool(&self, member: Option<&str>) -> Option<&Arc<Pool>> {
        match member {
            None => Some(&self.public),
            Some(name) => self.members.get(name),
        }
    }
}

pub struct Pools {
    upstreams: RwLock<Vec<Upstream>>,
    /// What the sweep's times count from.
    epoch: Instant,
    /// When the next sweep is due, in milliseconds since `epoch`.
    next_sweep_ms: AtomicU64,
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            upstreams: RwLock::default(),
            epoch: Instant::now(),
            next_sweep_ms: AtomicU64::new(0),
        }
    }
}

impl Pools {
    /// The pool for `member`'s requests to `authority` (`None`: a public
    /// route's).
    pub fn get(&self, authority: &str, member: Option<&str>) -> Arc<Pool> {
        self.sweep_if_due();
        if let Ok(ups) = self.upstreams.read() {
            let found = ups.iter().find(|u| u.authority == authority);
            if let Some(p) = found.and_then(|u| u.pool(member)) {
                return p.clone();
            }
        }
        let mut ups = self.upstreams.write().unwrap_or_else(|e| e.into_inner());
        let i = match ups.iter().position(|u| u.authority == authority) {
            Some(i) => i,
            None => {
                ups.push(Upstream {
                    authority: authority.to_string(),
                    public: Arc::default(),
                    members: HashMap::new(),
                });
                ups.len() - 1
            }
        };
        let up = &mut ups[i];
        match member {
            None => up.public.clone(),
            Some(name) => up.members.entry(name.into()).or_default().clone(),
        }
    }

    /// Sweep every pool if [`SWEEP_EVERY`] has passed; one caller does.
    fn sweep_if_due(&self) {
        let now = Instant::now();
        let now_ms = now.duration_since(self.epoch).as_millis() as u64;
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        if now_ms < due
            || self
                .next_sweep_ms
                .compare_exchange(
                    due,
                    now_ms + SWEEP_EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        self.sweep(now);
    }

    fn sweep(&self, now: Instant) {
        let mut ups = self.upstreams.write().unwrap_or_else(|e| e.into_inner());
        for up in ups.iter_mut() {
            up.public.sweep(now);
            // A pool a request still holds (to put its connection back in)
            // stays; the write lock keeps anyone from taking a new hold.
            up.members
                .retain(|_, p| !p.sweep(now) || Arc::strong_count(p) > 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_and_the_public_routes_have_their_own_pool_per_upstream() {
        let pools = Pools::default();
        let alice = pools.get("127.0.0.1:1", Some("alice"));
        let bob = pools.get("127.0.0.1:1", Some("bob"));
        let public = pools.get("127.0.0.1:1", None);
        let alice_elsewhere = pools.get("127.0.0.1:2", Some("alice"));
        for (a, b) in [
            (&alice, &bob),
            (&alice, &public),
            (&bob, &public),
            (&alice, &alice_elsewhere),
        ] {
            assert!(!Arc::ptr_eq(a, b));
        }
        assert!(Arc::ptr_eq(
            &alice,
            &pools.get("127.0.0.1:1", Some("alice"))
        ));
        assert!(Arc::ptr_eq(&public, &pools.get("127.0.0.1:1", None)));
    }

    #[test]
    fn a_sweep_forgets_empty_member_pools_nobody_holds() {
        let pools = Pools::default();
        let held = pools.get("127.0.0.1:1", Some("alice"));
        drop(pools.get("127.0.0.1:1", Some("bob")));
        pools.sweep(Instant::now());
        let ups = pools.upstreams.read().unwrap();
        let names: Vec<&str> = ups[0].members.keys().map(|k| &**k).collect();
        assert_eq!(names, ["alice"]);
        drop(ups);
        assert!(Arc::ptr_eq(&held, &pools.get("127.0.0.1:1", Some("alice"))));
    }
}
