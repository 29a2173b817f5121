//! Process-wide state shared by every connection: the current config
//! snapshot (one `ArcSwap`, swapped whole on reload), metrics, the access
//! log, the upstream pool and the registry of open tunnels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::changes::AtStart;
use crate::config::Snapshot;
use crate::limits::Limiter;
use crate::observe::access_log::AccessLog;
use crate::observe::metrics::Metrics;
use crate::observe::suggest::Suggestions;
use crate::tunnel::Tunnels;
use crate::upstream::UpstreamClient;

pub struct State {
    pub config: ArcSwap<Snapshot>,
    pub metrics: Metrics,
    pub access_log: AccessLog,
    pub upstream: UpstreamClient,
    pub tunnels: Tunnels,
    pub limiter: Limiter,
    /// Denied origins and networks per member, for `/suggest`.
    pub suggest: Suggestions,
    draining: AtomicBool,
    upstream_seen: AtomicBool,
    /// What the process started with that a reload cannot change.
    pub at_start: AtStart,
}

impl State {
    pub fn new(snapshot: Snapshot, access_log: AccessLog) -> Arc<Self> {
        let upstream = UpstreamClient::new();
        let at_start = AtStart::of(&snapshot);
        let metrics = Metrics::new();
        metrics.set_cert_expiries(&crate::config::certs::expiries(
            snapshot.listen.tls.as_ref(),
        ));
        Arc::new(State {
            config: ArcSwap::from_pointee(snapshot),
            metrics,
            access_log,
            upstream,
            tunnels: Tunnels::default(),
            limiter: Limiter::default(),
            suggest: Suggestions::default(),
            draining: AtomicBool::new(false),
            upstream_seen: AtomicBool::new(false),
            at_start,
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.config.load_full()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn mark_upstream_seen(&self) {
        if !self.upstream_seen.load(Ordering::Relaxed) {
            self.upstream_seen.store(true, Ordering::Relaxed);
        }
    }

    pub fn upstream_seen(&self) -> bool {
        self.upstream_seen.load(Ordering::Relaxed)
    }
}
