//! One accepted client connection: who is on the other end, and what
//! clawgate remembers about it between requests (the unauthenticated-slot
//! it holds, the peer address header, the last token that identified it).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use prometheus::{Histogram, IntCounter, IntGauge};

use crate::limits::conn_cap::Claim;
use clawgate_policy::authorize::{Diff, Explained};
use clawgate_policy::identity::{self, CredentialId, PeerCert, Via};
use clawgate_policy::member::MemberId;
use clawgate_policy::Reason;

/// One accepted client connection.
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
    pub cert: Option<PeerCert>,
    /// Holds one of the peer's unauthenticated-connection slots until the
    /// first identified request (see `limits::conn_cap`).
    unauthenticated: Arc<Claim>,
    /// The peer address as an `x-forwarded-for` value, formatted once.
    pub(super) peer_ip_header: HeaderValue,
    /// The last token that identified a request on this connection, so a
    /// keep-alive connection does not hash the same token on every request.
    /// Valid only for the snapshot generation it was made in.
    auth: std::sync::Mutex<Option<AuthCache>>,
    /// The last token refused as unknown here, and in which generation: a
    /// client repeating a bad token is refused again without hashing it
    /// (only a reload can change the answer).
    rejected: std::sync::Mutex<Option<(u64, Box<[u8]>)>>,
    /// The last refused request's explanation: a client repeating it gets
    /// the same diff without the nearest-miss search again.
    refused: std::sync::Mutex<Option<(ExplainKey, Refused)>>,
    /// Metric handles of the last request (see [`Handles`]).
    pub(super) handles: std::sync::Mutex<Handles>,
    /// Requests answered, and requests the client cancelled before their
    /// response (an h2 stream reset), on this connection.
    answered: AtomicU64,
    cancelled: AtomicU64,
    /// Set once cancellations look like a flood: the connection is then
    /// shut down gracefully (see `drain::Watcher::watch`).
    pub shed: Arc<AtomicBool>,
}

/// Cancelled requests a connection may have before the cancel share is
/// looked at. A browser cancels a stream now and then; a "rapid reset"
/// client (CVE-2023-44487) cancels nearly every one, and each costs a
/// gateway request and connection. Envoy's default check is alike.
pub const CANCELS_TOLERATED: u64 = 100;

/// Metric handles resolved for this connection's last request, keyed by
/// what decides their labels (and the snapshot generation, since indices
/// change on reload). A keep-alive connection's requests mostly repeat
/// them, and resolving one costs a label hash and a map lookup.
#[derive(Default)]
pub(super) struct Handles {
    /// (generation, member, upstream, status) → `requests_total`.
    pub requests: Option<(RequestsKey, IntCounter)>,
    /// (generation, member, reason) → `denials_total`.
    pub denials: Option<(DenialsKey, IntCounter)>,
    /// (generation, upstream) → request duration and mid-body resets.
    pub upstream: Option<((u64, usize), (Histogram, IntCounter))>,
    /// (generation, member, token id) → `token_last_used_timestamp`.
    pub token_used: Option<((u64, MemberId, CredentialId), IntGauge)>,
    /// (generation, member) → `member_last_allowed_timestamp`.
    pub member_allowed: Option<((u64, MemberId), IntGauge)>,
}

/// A refused request's explanation, and its Origin as `/suggest` counts
/// it (see [`crate::observe::suggest::origin_key`]): both follow from the same key.
#[derive(Clone)]
pub(super) struct Refused {
    pub reason: Reason,
    pub explained: Arc<Explained>,
    pub origin_key: Option<Arc<str>>,
}

/// What a policy diff depends on: the snapshot (so the member's lists),
/// the member, the presented Origin and the client address.
type ExplainKey = (u64, MemberId, Option<Box<[u8]>>, IpAddr);

/// What labels `denials_total`: (generation, member, reason).
pub(super) type DenialsKey = (u64, Option<MemberId>, Reason);

/// What labels `requests_total`: (generation, member, upstream, status).
pub(super) type RequestsKey = (u64, Option<MemberId>, Option<usize>, u16);

/// The handle in `slot` if it was made for `key`, else a new one from
/// `make`, left in the slot. Borrowed, not cloned: a handle is an `Arc`,
/// and a clone and its drop are two atomic operations per use.
pub(super) fn cached<K: PartialEq, V>(
    slot: &mut Option<(K, V)>,
    key: K,
    make: impl FnOnce() -> V,
) -> &V {
    if !matches!(slot, Some((k, _)) if *k == key) {
        *slot = Some((key, make()));
    }
    match slot {
        Some((_, v)) => v,
        None => unreachable!("filled above"),
    }
}

struct AuthCache {
    generation: u64,
    token: Box<[u8]>,
    member: MemberId,
    token_id: CredentialId,
    expires: Option<SystemTime>,
}

impl Conn {
    pub fn new(
        peer: SocketAddr,
        tls: bool,
        cert: Option<PeerCert>,
        unauthenticated: Arc<Claim>,
    ) -> Self {
        Conn {
            peer_ip_header: HeaderValue::from_str(
                &clawgate_policy::cidr::canonical(peer.ip()).to_string(),
            )
            .expect("an IP address is a valid header value"),
            peer,
            tls,
            cert,
            unauthenticated,
            auth: std::sync::Mutex::new(None),
            rejected: std::sync::Mutex::new(None),
            refused: std::sync::Mutex::new(None),
            handles: std::sync::Mutex::new(Handles::default()),
            answered: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            shed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The identity this exact token had on this connection, if the
    /// snapshot has not changed since and the token has not expired.
    pub(super) fn cached_identity(
        &self,
        generation: u64,
        token: &[u8],
        now: SystemTime,
    ) -> Option<identity::Identity> {
        let guard = self.auth.lock().ok()?;
        let c = guard.as_ref()?;
        if c.generation != generation
            || !same_secret(&c.token, token)
            || c.expires.is_some_and(|e| now >= e)
        {
            return None;
        }
        Some(identity::Identity {
            member: c.member,
            via: Via::Token {
                token_id: c.token_id.clone(),
            },
        })
    }

    pub(super) fn remember(
        &self,
        generation: u64,
        token: &[u8],
        member: MemberId,
        token_id: &CredentialId,
        expires: Option<SystemTime>,
    ) {
        if let Ok(mut guard) = self.auth.lock() {
            *guard = Some(AuthCache {
                generation,
                token: token.into(),
                member,
                token_id: token_id.clone(),
                expires,
            });
        }
    }

    /// Was `token` already refused as unknown on this connection, in this
    /// snapshot generation?
    pub(super) fn known_bad(&self, generation: u64, token: &[u8]) -> bool {
        self.rejected.lock().is_ok_and(|r| {
            r.as_ref()
                .is_some_and(|(g, t)| *g == generation && same_secret(t, token))
        })
    }

    pub(super) fn remember_bad(&self, generation: u64, token: &[u8]) {
        if let Ok(mut r) = self.rejected.lock() {
            *r = Some((generation, token.into()));
        }
    }

    /// The last refusal on this connection, if it was for this member,
    /// Origin and address in this snapshot: policy is a function of those
    /// alone, so a client repeating a refused request is refused again
    /// without parsing its Origin or searching for the nearest miss.
    pub(super) fn refused_again(
        &self,
        generation: u64,
        member: MemberId,
        origin: Option<&[u8]>,
        ip: IpAddr,
    ) -> Option<Refused> {
        let slot = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(((g, m, o, i), r))
                if *g == generation && *m == member && o.as_deref() == origin && *i == ip =>
            {
                Some(r.clone())
            }
            _ => None,
        }
    }

    /// Remember (and return) a refusal for [`Conn::refused_again`].
    pub(super) fn refused(
        &self,
        generation: u64,
        member: MemberId,
        origin: Option<&[u8]>,
        ip: IpAddr,
        reason: Reason,
        diff: Diff,
    ) -> Refused {
        let r = Refused {
            reason,
            explained: Arc::new(Explained::new(diff)),
            origin_key: crate::observe::suggest::origin_key(origin).map(Arc::from),
        };
        let mut slot = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(((generation, member, origin.map(Box::from), ip), r.clone()));
        r
    }

    /// A request on this connection ended: answered, or cancelled by the
    /// client before its response. Past [`CANCELS_TOLERATED`] cancels, when
    /// they are at least half of all requests, the connection is shed.
    pub(super) fn request_ended(&self, answered: bool) {
        if answered {
            self.answered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let answered = self.answered.load(Ordering::Relaxed);
        if cancelled > CANCELS_TOLERATED
            && cancelled >= answered
            && !self.shed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                peer = %self.peer,
                cancelled,
                answered,
                "closing a connection that cancels most of its requests (rapid reset)"
            );
        }
    }

    /// An identified request arrived: give the unauthenticated slot back.
    pub(super) fn authenticated(&self) {
        self.unauthenticated.release();
    }
}

/// Constant-time equality of two secrets of public length, a word at a
/// time, not byte by byte as subtle's slice comparison goes.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8-byte chunk"));
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        diff |= word(x) ^ word(y);
    }
    let tail = a.len() - a.len() % 8;
    for (x, y) in a[tail..].iter().zip(&b[tail..]) {
        diff |= u64::from(x ^ y);
    }
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_equal_only_when_every_byte_matches() {
        let t = b"cg_demo_alice_7Qm2xN4pL9vR3sT8wK";
        assert!(same_secret(t, t));
        assert!(same_secret(b"", b""));
        for i in 0..t.len() {
            let mut other = *t;
            other[i] ^= 1;
            assert!(!same_secret(t, &other), "byte {i}");
        }
        assert!(!same_secret(t, &t[..t.len() - 1]));
        assert!(!same_secret(b"abc", b"abd"));
    }
}
