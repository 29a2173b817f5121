//! Whether each gateway is failing, for stderr: the first failure after
//! a success is logged at once (upstream, address, kind, request ID), a
//! failure that goes on is summarised at most once a [`REPEAT_EVERY`],
//! and the first success after failures says the gateway is back. The
//! access log has every failure; this is the line on-call sees first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::UpstreamError;

/// At most one "still failing" line per upstream this often.
const REPEAT_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Health {
    /// Some upstream is failing: only then does a success take the lock.
    any_failing: AtomicBool,
    failing: Mutex<HashMap<String, Failing>>,
}

struct Failing {
    since: Instant,
    last_line: Instant,
    /// Failures since `last_line`.
    unlogged: u64,
    total: u64,
}

impl Health {
    pub fn failure(&self, upstream: &str, addr: &str, e: UpstreamError, request_id: &str) {
        let now = Instant::now();
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        self.any_failing.store(true, Ordering::Relaxed);
        match failing.get_mut(upstream) {
            None => {
                tracing::warn!(
                    upstream,
                    address = addr,
                    kind = e.kind(),
                    request_id,
                    "gateway failing (first failure after a success)"
                );
                failing.insert(
                    upstream.to_string(),
                    Failing {
                        since: now,
                        last_line: now,
                        unlogged: 0,
                        total: 1,
                    },
                );
            }
            Some(f) => {
                f.total += 1;
                f.unlogged += 1;
                if now.duration_since(f.last_line) >= REPEAT_EVERY {
                    tracing::warn!(
                        upstream,
                        address = addr,
                        kind = e.kind(),
                        request_id,
                        failures = f.unlogged,
                        failing_for_s = now.duration_since(f.since).as_secs(),
                        "gateway still failing"
                    );
                    f.last_line = now;
                    f.unlogged = 0;
                }
            }
        }
    }

    /// A response came from `upstream`. One relaxed load unless some
    /// upstream is failing.
    pub fn success(&self, upstream: &str) {
        if !self.any_failing.load(Ordering::Relaxed) {
            return;
        }
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failing.remove(upstream) {
            tracing::info!(
                upstream,
                failures = f.total,
                failed_for_s = f.since.elapsed().as_secs(),
                "gateway answering again"
            );
        }
        if failing.is_empty() {
            self.any_failing.store(false, Ordering::Relaxed);
        }
    }

    #[cfg(test)]
    fn is_failing(&self, upstream: &str) -> bool {
        self.failing.lock().unwrap().contains_key(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_marks_its_upstream_until_a_success() {
        let h = Health::default();
        h.success("prod");
        assert!(!h.is_failing("prod"));
        h.failure("prod", "127.0.0.1:1", UpstreamError::ConnectRefused, "r1");
        h.failure("prod", "127.0.0.1:1", UpstreamError::ConnectRefused, "r2");
        assert!(h.is_failing("prod"));
        h.success("staging");
        assert!(h.is_failing("prod"));
        h.success("prod");
        assert!(!h.is_failing("prod"));
        assert!(!h.any_failing.load(Ordering::Relaxed));
    }
}
