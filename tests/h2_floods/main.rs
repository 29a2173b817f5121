//! HTTP/2 floods against the cleartext (h2c prior-knowledge) listener: a
//! client that opens streams and cancels them at once (the "rapid reset"
//! pattern, CVE-2023-44487), and one that opens far more concurrent streams
//! than `max_concurrent_streams`. Each must leave the proxy serving a
//! member on another connection, and the cancelled requests must not pile
//! up at the gateway: past 100 cancels that are most of its requests, a
//! connection is shut down gracefully (GOAWAY), as Envoy does.
//!
//! Every loop is bounded in count and time.

#[path = "../common/mod.rs"]
mod common;
mod raw_frames;
mod streams;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Empty;
use tokio::net::TcpStream;

const ALICE: &str = "alice-h2-flood-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);
/// The proxy's tolerance before shedding (`CANCELS_TOLERATED`).
const CANCELS: usize = clawgate::proxy::CANCELS_TOLERATED as usize;

async fn still_serving(server: &clawgate::runtime::server::Server, after: &str) {
    let r = tokio::time::timeout(
        WAIT,
        get(
            server.addr,
            "/still-serving",
            &[("authorization", &format!("Bearer {ALICE}"))],
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("after {after}: a member request hung"));
    assert_eq!(r.status, 200, "after {after}: the proxy stopped serving");
}

fn request(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri(format!("http://gw.test{path}"))
        .header("authorization", format!("Bearer {ALICE}"))
        .body(Empty::new())
        .unwrap()
}
