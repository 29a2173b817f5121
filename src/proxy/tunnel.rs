//! The request handler's side of tunnels: what authorized an upgrade (its
//! [`Grant`]), the task that relays an upgraded connection and logs it at
//! close, and [`StreamWatch`], which ends an event stream when the
//! registry (`crate::tunnel::registry`) or its credential's expiry says so.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::observe::access_log::{Record, Timestamp};
use crate::observe::metrics::NO_MEMBER;
use crate::request_id::RequestId;
use crate::state::State;
use clawgate_policy::identity::PeerCert;
use clawgate_policy::recheck::Grant;

use super::headers::Caller;
use super::upstream::UpstreamError;
use crate::tunnel::{relay, DRAIN_DEADLINE, GOING_AWAY};

/// Record what authorized an upgrade that is about to become a tunnel.
pub fn grant(
    caller: &Caller<'_>,
    cert: Option<PeerCert>,
    origin: Option<Vec<u8>>,
    client_ip: IpAddr,
) -> Grant {
    match caller {
        Caller::Public { prefix } => Grant::public(prefix, origin, client_ip),
        Caller::Member { member, via } => Grant::member(member, via, cert, origin, client_ip),
    }
}

/// An open streamed response (SSE) registered like a tunnel, so a reload
/// that revokes its grant or the token's expiry ends it, and a drain
/// whose time is up cuts it ([`DRAIN_DEADLINE`]).
pub struct StreamWatch {
    state: Arc<State>,
    id: u64,
    rx: oneshot::Receiver<&'static str>,
    expiry: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    expiry_reason: &'static str,
    member: String,
    request_id: RequestId,
}

impl StreamWatch {
    pub fn register(state: &Arc<State>, grant: Grant, request_id: RequestId) -> StreamWatch {
        let expiry = grant.expires.map(|e| {
            let left = e.duration_since(SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep(left))
        });
        let member = grant.member.clone().unwrap_or_else(|| NO_MEMBER.into());
        let expiry_reason = grant.expiry.code();
        let (id, rx) = state.tunnels.register(grant, true);
        StreamWatch {
            state: state.clone(),
            id,
            rx,
            expiry,
            expiry_reason,
            member,
            request_id,
        }
    }

    /// Ready with the reason once the stream must end.
    pub fn poll_stop(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<&'static str> {
        use std::future::Future;
        let reason = if let std::task::Poll::Ready(r) = std::pin::Pin::new(&mut self.rx).poll(cx) {
            r.unwrap_or("closed")
        } else if self
            .expiry
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
        {
            self.expiry_reason
        } else {
            return std::task::Poll::Pending;
        };
        if reason == DRAIN_DEADLINE {
            tracing::info!(request_id = ?self.request_id, member = %self.member, "cut open event stream at the drain deadline");
        } else {
            self.state
                .metrics
                .revoked_connections
                .with_label_values(&[&self.member, reason])
                .inc();
            tracing::info!(request_id = ?self.request_id, member = %self.member, reason, "ended open event stream");
        }
        std::task::Poll::Ready(reason)
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        self.state.tunnels.remove(self.id);
    }
}

/// What the access-log line at close says about the tunnel.
pub struct LogInfo {
    pub request_id: String,
    pub member: String,
    pub credential: Option<clawgate_policy::identity::CredentialId>,
    pub client_ip: std::net::IpAddr,
    pub ip_source: crate::client_ip::IpSource,
    pub path: String,
    pub upstream: String,
    /// The upgrade is a WebSocket (close frames may be sent).
    pub websocket: bool,
    /// Opened as an h2 stream (RFC 8441): logged as its `CONNECT` and 200.
    pub h2: bool,
}

/// Wait for both upgrades, then copy until either side closes, the grant
/// is revoked, or the proxy drains.
pub fn spawn(
    state: Arc<State>,
    client: OnUpgrade,
    upstream: super::upstream::Upgraded,
    grant: Grant,
    info: LogInfo,
) {
    let open = crate::observe::metrics::OpenConn::count(&state.metrics.connections_open);
    tokio::spawn(async move {
        let _open = open;
        let started = Instant::now();
        let (expires, expiry_reason) = (grant.expires, grant.expiry.code());
        let member_label = grant.member.clone().unwrap_or_else(|| NO_MEMBER.into());
        let (id, mut close_rx) = state.tunnels.register(grant, false);
        let gauge = state
            .metrics
            .websockets_open
            .with_label_values(&[&member_label]);
        gauge.inc();
        let client = match client.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(request_id = %info.request_id, "upgrade failed: {e}");
                gauge.dec();
                state.tunnels.remove(id);
                return;
            }
        };
        let websocket = info.websocket;
        let client = TokioIo::new(client);
        let stop = async move {
            let expiry = async {
                match expires.map(|e| e.duration_since(SystemTime::now())) {
                    Some(Ok(d)) => tokio::time::sleep(d).await,
                    Some(Err(_)) => {}
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                reason = &mut close_rx => reason.unwrap_or("closed"),
                _ = expiry => expiry_reason,
            }
        };
        let rid = info.request_id.clone();
        let (end, bytes_in, bytes_out) =
            relay::relay(client, upstream, websocket, stop, |reason| {
                let code = match reason {
                    GOING_AWAY => 1001,
                    // 1011 (unexpected condition): 1014 is refused by some clients.
                    relay::UPSTREAM_RESET => 1011,
                    _ => 1008,
                };
                (code, format!("clawgate: {reason}; request_id={rid}"))
            })
            .await;
        let closed_by = match end {
            relay::End::Closed | relay::End::UpstreamReset => None,
            relay::End::Stopped(r) => Some(r),
        };
        let upstream_reset = end == relay::End::UpstreamReset;
        if upstream_reset {
            state
                .metrics
                .upstream_errors
                .with_label_values(&[&info.upstream, UpstreamError::Reset.kind()])
                .inc();
            tracing::warn!(request_id = %info.request_id, member = %member_label, "the gateway dropped an open WebSocket");
        }
        let bytes = Some((bytes_in, bytes_out));
        gauge.dec();
        state.tunnels.remove(id);
        if let Some(reason) = closed_by.filter(|r| *r != GOING_AWAY) {
            state
                .metrics
                .revoked_connections
                .with_label_values(&[&member_label, reason])
                .inc();
            tracing::info!(request_id = %info.request_id, member = %member_label, reason, "closed open WebSocket");
        }
        state.access_log.write(&Record {
            ts: Timestamp::now(),
            kind: "websocket",
            request_id: &info.request_id,
            member: &info.member,
            credential: info.credential.as_deref(),
            client_ip: Some(info.client_ip),
            ip_source: Some(info.ip_source),
            method: if info.h2 { "CONNECT" } else { "GET" },
            path: &info.path,
            status: if info.h2 { 200 } else { 101 },
            decision: if closed_by.is_some() {
                "revoked"
            } else if upstream_reset {
                "error"
            } else {
                "closed"
            },
            reason: closed_by.or(upstream_reset.then_some(relay::UPSTREAM_RESET)),
            upstream: Some(&info.upstream),
            upstream_addr: None,
            upstream_ms: None,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            bytes_in: bytes.map(|b| b.0),
            bytes_out: bytes.map(|b| b.1),
            diff: None,
        });
    });
}
