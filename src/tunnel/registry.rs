//! Every open tunnel (upgraded connection or event stream) with what
//! authorized it (member, token, origin, client address), so a reload or a
//! token's expiry can re-check it (`clawgate_policy::recheck`: the policy a
//! new request gets, with the same reasons) and close the ones that no
//! longer pass, and a drain can close them all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::config::Snapshot;
use clawgate_policy::recheck::{self, Grant};

/// Close reason for a draining proxy (WebSocket close 1001).
pub const GOING_AWAY: &str = "going_away";

/// Why an event stream still open when the drain's time is up is cut: its
/// client must see a truncated body (no last chunk on HTTP/1.1, a reset
/// stream on h2), never a clean end it would take for the whole stream.
pub const DRAIN_DEADLINE: &str = "drain_deadline";

struct Entry {
    grant: Grant,
    close: Option<oneshot::Sender<&'static str>>,
    /// An event stream ([`StreamWatch`]), not an upgraded connection.
    stream: bool,
}

#[derive(Default)]
pub struct Tunnels {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

impl Tunnels {
    pub fn len(&self) -> usize {
        self.open.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn register(
        &self,
        grant: Grant,
        stream: bool,
    ) -> (u64, oneshot::Receiver<&'static str>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.open.lock() {
            m.insert(
                id,
                Entry {
                    grant,
                    close: Some(tx),
                    stream,
                },
            );
        }
        (id, rx)
    }

    pub(crate) fn remove(&self, id: u64) {
        if let Ok(mut m) = self.open.lock() {
            m.remove(&id);
        }
    }

    /// Re-check every open tunnel against `snap`; close those that fail.
    /// Returns how many were closed.
    pub fn revoke_against(&self, snap: &Snapshot) -> usize {
        let now = SystemTime::now();
        let Ok(mut m) = self.open.lock() else {
            return 0;
        };
        let mut closed = 0;
        for entry in m.values_mut() {
            if let Err(reason) = recheck::still_allowed(snap.rules(), &entry.grant, now) {
                if let Some(tx) = entry.close.take() {
                    let _ = tx.send(reason.code());
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Close every upgraded connection (a drain starting: WebSockets get
    /// a close frame saying why). Event streams are left to run.
    pub fn close_tunnels(&self, reason: &'static str) -> usize {
        self.close_where(reason, false)
    }

    /// End every open event stream (the drain's time is up). Returns
    /// how many.
    pub fn cut_streams(&self, reason: &'static str) -> usize {
        self.close_where(reason, true)
    }

    fn close_where(&self, reason: &'static str, streams: bool) -> usize {
        let Ok(mut m) = self.open.lock() else {
            return 0;
        };
        let mut closed = 0;
        for entry in m.values_mut().filter(|e| e.stream == streams) {
            if let Some(tx) = entry.close.take() {
                let _ = tx.send(reason);
                closed += 1;
            }
        }
        closed
    }
}
