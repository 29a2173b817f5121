//! The admin listener (loopback by default, separate from member traffic):
//! `/metrics` for Prometheus, `/healthz` (the process answers), `/readyz`
//! (config loaded, an upstream reached once, not draining), `/suggest`
//! (denied origins and networks per member, JSON, for `clawgate suggest`).
//!
//! `/readyz` also says which config it serves (directory and fingerprint of
//! the loaded snapshot), so `clawgate oncall` can tell its own instance from
//! a stale one or another instance answering at the same address.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Snapshot;
use crate::state::State;

pub async fn serve(state: Arc<State>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(p) => p,
                Err(_) => continue,
            },
            _ = stop.changed() => break,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(state.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => {
            state
                .metrics
                .access_log_dropped
                .set(state.access_log.dropped() as i64);
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                state.metrics.render(),
            )
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/suggest" => (
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&state.suggest.report(&state.snapshot())).unwrap_or_default(),
        ),
        "/readyz" => {
            let (status, word) = if state.is_draining() {
                (StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else if !state.upstream_seen() {
                (StatusCode::SERVICE_UNAVAILABLE, "no upstream reached yet")
            } else {
                (StatusCode::OK, "ready")
            };
            let snap = state.snapshot();
            let pending = state.at_start.pending(&snap);
            (status, "text/plain", readyz_body(word, &snap, &pending))
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz, /readyz, /suggest\n".into(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}

/// The `/readyz` line naming the loaded snapshot's fingerprint.
pub const READYZ_FINGERPRINT: &str = "config_fingerprint";
/// The `/readyz` line naming the config directory it was loaded from.
pub const READYZ_DIR: &str = "config_dir";

/// The `/readyz` line naming loaded settings that wait for a restart.
pub const READYZ_RESTART_PENDING: &str = "restart_pending";

/// `/readyz`'s body: the state word, then `key: value` lines.
fn readyz_body(word: &str, snap: &Snapshot, pending: &[&str]) -> String {
    // Absolute, so it reads the same whatever directory `run` started in.
    let dir = std::fs::canonicalize(&snap.dir).unwrap_or_else(|_| snap.dir.clone());
    let pending = if pending.is_empty() {
        "-".to_string()
    } else {
        pending.join(" ")
    };
    format!(
        "{word}\n{READYZ_DIR}: {}\n{READYZ_FINGERPRINT}: {}\n{READYZ_RESTART_PENDING}: {pending}\n",
        dir.display(),
        snap.fingerprint
    )
}
