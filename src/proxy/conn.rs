//! One accepted client connection: who is on the other end, and what
//! clawgate remembers about it between requests (the unauthenticated-slot
//! it holds, the peer address header, the last token that identified it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;

use crate::identity::{self, PeerCert, Via};
use crate::member::MemberId;
use crate::state::State;

/// One accepted client connection.
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
    pub cert: Option<PeerCert>,
    /// Holds one of the peer's unauthenticated-connection slots until the
    /// first identified request (see `limits`).
    unauthenticated: Arc<AtomicBool>,
    /// The peer address as an `x-forwarded-for` value, formatted once.
    pub(super) peer_ip_header: HeaderValue,
    /// The last token that identified a request on this connection, so a
    /// keep-alive connection does not hash the same token on every request.
    /// Valid only for the snapshot generation it was made in.
    auth: std::sync::Mutex<Option<AuthCache>>,
}

struct AuthCache {
    generation: u64,
    token: Box<[u8]>,
    member: MemberId,
    token_id: String,
    expires: Option<SystemTime>,
}

impl Conn {
    pub fn new(
        peer: SocketAddr,
        tls: bool,
        cert: Option<PeerCert>,
        unauthenticated: Arc<AtomicBool>,
    ) -> Self {
        Conn {
            peer_ip_header: HeaderValue::from_str(&crate::cidr::canonical(peer.ip()).to_string())
                .expect("an IP address is a valid header value"),
            peer,
            tls,
            cert,
            unauthenticated,
            auth: std::sync::Mutex::new(None),
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
        use subtle::ConstantTimeEq;
        let guard = self.auth.lock().ok()?;
        let c = guard.as_ref()?;
        if c.generation != generation
            || !bool::from(c.token.ct_eq(token))
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
        token_id: &str,
        expires: Option<SystemTime>,
    ) {
        if let Ok(mut guard) = self.auth.lock() {
            *guard = Some(AuthCache {
                generation,
                token: token.into(),
                member,
                token_id: token_id.to_string(),
                expires,
            });
        }
    }

    /// An identified request arrived: give the unauthenticated slot back.
    pub(super) fn authenticated(&self, state: &State) {
        if self.unauthenticated.load(Ordering::Relaxed)
            && self.unauthenticated.swap(false, Ordering::AcqRel)
        {
            state.limiter.release_unauthenticated(self.peer.ip());
        }
    }
}
