//! WebSocket scale client for `benches/load/ws_scale.sh`.
//!
//! 1. Reads the proxy's RSS (`VmRSS` of `--pid`), opens `--conns` WebSockets
//!    through it (`--via`), keeps them all open and idle, reads RSS again:
//!    RSS per connection = the difference / connections. RSS is also read
//!    after the first half: the second half's growth per connection is
//!    the cost of one more, without the one-time growth the first ones
//!    bring (allocator pages, tables).
//! 2. With those held, measures message round trips (send one binary
//!    message, wait for its echo) on one extra connection through the proxy
//!    and one straight to the echo upstream (`--direct`), and with
//!    `--reference` one through another proxy placed like it (nginx, on the
//!    proxy's core), interleaved, and prints p50/p90/p99 for each.
//! 3. Closes everything and reads RSS a last time.
//!
//! `wss://` targets are reached over TLS (rustls, trusting `--ca`), so the
//! held connections then carry a TLS session each on the proxy's side too.
//!
//! With `--h2-streams S`, the held WebSockets are opened the way a browser
//! does over an HTTP/2 connection that offers them (RFC 8441 extended
//! CONNECT): S to each h2 connection (h2c for ws://, ALPN h2 for wss://),
//! so the proxy holds one client socket per S WebSockets and one gateway
//! socket per WebSocket. The timed round trips stay HTTP/1.1 upgrades.
//!
//! Every loop is bounded: at most 60,000 connections, 100,000 messages,
//! and `--timeout-secs` for the whole run. Loopback addresses only. Output
//! ends with `RESULT key=value ...` lines for the script.
//!
//!     cargo run --release --example ws_hold -- --pid PID --token T --conns 10000

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

mod dial;
mod h2;

use dial::{connect, target, Target, Ws};

const MAX_CONNS: usize = 60_000;
const MAX_MSGS: usize = 100_000;

#[derive(Parser)]
struct Args {
    /// WebSocket URL through the proxy (ws:// or wss://).
    #[arg(long, default_value = "ws://127.0.0.1:19010/")]
    via: String,
    /// The same echo upstream, directly.
    #[arg(long, default_value = "ws://127.0.0.1:19020/")]
    direct: String,
    /// The same echo upstream through a reference proxy (sent the same
    /// token, no Origin), timed too.
    #[arg(long)]
    reference: Option<String>,
    /// Idle WebSockets to hold through the proxy (at most 60,000).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Bearer token for the proxy (default: $BENCH_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Origin header to send through the proxy (none by default).
    #[arg(long)]
    origin: Option<String>,
    /// PID of the proxy, for VmRSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Round trips to time per target (at most 100,000).
    #[arg(long, default_value_t = 5_000)]
    msgs: usize,
    /// Payload size of each timed message.
    #[arg(long, default_value_t = 64)]
    msg_bytes: usize,
    /// Source addresses for the held connections, used round-robin
    /// (e.g. 127.0.0.2,127.0.0.3 when one address runs out of ports).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    sources: Vec<IpAddr>,
    /// Handshakes in flight at once while opening.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Pause before reading RSS, so the proxy finishes its work.
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
    /// Upper bound for the whole run.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// PEM CA certificate that signed the wss:// targets' certificates.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Open the held WebSockets as RFC 8441 streams, this many to each
    /// HTTP/2 connection (0: one HTTP/1.1 upgrade per connection).
    #[arg(long, default_value_t = 0)]
    h2_streams: usize,
}

fn main() {
    let args = Args::parse();
    if args.conns > MAX_CONNS || args.msgs > MAX_MSGS || args.msgs == 0 {
        eprintln!("ws_hold: --conns must be <= {MAX_CONNS}, --msgs 1..={MAX_MSGS}");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let limit = Duration::from_secs(args.timeout_secs);
    match rt.block_on(async move { tokio::time::timeout(limit, run(args)).await }) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("ws_hold: {e}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("ws_hold: timed out after {}s", limit.as_secs());
            std::process::exit(1);
        }
    }
}

/// `VmRSS` of a process in KiB.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Send one message and wait for its echo; the round trip in ns.
async fn round_trip(ws: &mut Ws, payload: &Bytes) -> Result<u64, String> {
    let t0 = Instant::now();
    ws.send(Message::Binary(payload.clone()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() == payload.len() => {
                return Ok(t0.elapsed().as_nanos() as u64)
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => return Err(format!("unexpected message {other:?}")),
            Some(Err(e)) => return Err(format!("receive: {e}")),
            None => return Err("connection closed".into()),
        }
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn run(mut args: Args) -> Result<(), String> {
    if args.token.is_none() {
        args.token = std::env::var("BENCH_TOKEN").ok();
    }
    let token = args
        .token
        .clone()
        .ok_or("--token or BENCH_TOKEN is required")?;
    let via = target(&args.via, args.ca.as_deref())?;
    let direct = target(&args.direct, args.ca.as_deref())?;
    for s in &args.sources {
        if !s.is_loopback() {
            return Err(format!("source {s}: loopback only"));
        }
    }

    let rss0 = rss_kib(args.pid);
    println!("proxy RSS before: {} KiB", show(rss0));

    // 1. Open and hold, in two halves with an RSS reading after each: the
    //    first connections also pay one-time growth (allocator pages,
    //    tables), so the second half's growth is the cost of one more.
    let t0 = Instant::now();
    let half = args.conns / 2;
    let mut held: Vec<Ws> = Vec::with_capacity(args.conns);
    let mut failed = 0usize;
    let mut first_error = None;
    let mut rss_half = None;
    let mut held_half = 0usize;
    // The h2 connections' senders, kept so the connections stay open.
    let mut h2_conns = Vec::new();
    for (batch, range) in [(0, 0..half), (1, half..args.conns)] {
        let (ok, bad, err) = if args.h2_streams > 0 {
            h2::open_batch(&args, &token, &via, range, &mut h2_conns).await?
        } else {
            open_batch(&args, &token, &via, range).await?
        };
        held.extend(ok);
        failed += bad;
        if first_error.is_none() {
            first_error = err;
        }
        if batch == 0 && half > 0 {
            tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
            rss_half = rss_kib(args.pid);
            held_half = held.len();
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    println!(
        "opened {} WebSockets through {} in {open_secs:.1}s ({failed} failed{})",
        held.len(),
        args.via,
        first_error
            .as_deref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss1 = rss_kib(args.pid);
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) if !held.is_empty() => {
            Some(b.saturating_sub(a) as f64 * 1024.0 / held.len() as f64)
        }
        _ => None,
    };
    let marginal = match (rss_half, rss1) {
        (Some(a), Some(b)) if held.len() > held_half => {
            Some(b.saturating_sub(a) as f64 * 1024.0 / (held.len() - held_half) as f64)
        }
        _ => None,
    };
    let kib = |v: Option<f64>| v.map_or("?".into(), |b| format!("{:.2} KiB", b / 1024.0));
    println!(
        "proxy RSS holding {}: {} KiB -> {} bytes ({}) per connection",
        held.len(),
        show(rss1),
        per_conn.map(|b| format!("{b:.0}")).unwrap_or("?".into()),
        kib(per_conn),
    );
    println!(
        "proxy RSS holding {held_half}: {} KiB; the second {} connections added {} each",
        show(rss_half),
        held.len() - held_half,
        kib(marginal),
    );

    // 2. Round trips, through the proxy and direct, interleaved.
    let mut through = connect(&via, None, Some(&token), args.origin.as_deref()).await?;
    let mut straight = connect(&direct, None, None, None).await?;
    let mut reference = match &args.reference {
        Some(url) => {
            let to = target(url, args.ca.as_deref())?;
            Some(connect(&to, None, Some(&token), None).await?)
        }
        None => None,
    };
    let payload = Bytes::from(vec![b'x'; args.msg_bytes]);
    let warm = (args.msgs / 10).clamp(1, 500);
    for _ in 0..warm {
        round_trip(&mut through, &payload).await?;
        round_trip(&mut straight, &payload).await?;
        if let Some(r) = reference.as_mut() {
            round_trip(r, &payload).await?;
        }
    }
    let mut lat_via = Vec::with_capacity(args.msgs);
    let mut lat_direct = Vec::with_capacity(args.msgs);
    let mut lat_ref = Vec::with_capacity(args.msgs);
    for i in 0..args.msgs {
        // Each target goes first in turn.
        for k in 0..3 {
            match (i + k) % 3 {
                0 => lat_via.push(round_trip(&mut through, &payload).await?),
                1 => lat_direct.push(round_trip(&mut straight, &payload).await?),
                _ => {
                    if let Some(r) = reference.as_mut() {
                        lat_ref.push(round_trip(r, &payload).await?);
                    }
                }
            }
        }
    }
    lat_via.sort_unstable();
    lat_direct.sort_unstable();
    lat_ref.sort_unstable();
    println!(
        "round trip ({} x {} B, {} idle held): via p50 {:.1} us p90 {:.1} p99 {:.1} | direct p50 {:.1} us p90 {:.1} p99 {:.1}",
        args.msgs,
        args.msg_bytes,
        held.len(),
        pct(&lat_via, 0.5),
        pct(&lat_via, 0.9),
        pct(&lat_via, 0.99),
        pct(&lat_direct, 0.5),
        pct(&lat_direct, 0.9),
        pct(&lat_direct, 0.99),
    );
    if !lat_ref.is_empty() {
        println!(
            "round trip through the reference proxy: p50 {:.1} us p90 {:.1} p99 {:.1}",
            pct(&lat_ref, 0.5),
            pct(&lat_ref, 0.9),
            pct(&lat_ref, 0.99),
        );
        println!(
            "RESULT ref_p50_us={:.1} ref_p99_us={:.1}",
            pct(&lat_ref, 0.5),
            pct(&lat_ref, 0.99),
        );
    }

    // 3. Close everything (TCP close; the proxy tears its tunnels down).
    let _ = through.close(None).await;
    let _ = straight.close(None).await;
    if let Some(mut r) = reference {
        let _ = r.close(None).await;
    }
    let n_held = held.len();
    drop(held);
    drop(h2_conns);
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss2 = rss_kib(args.pid);
    println!("proxy RSS after closing: {} KiB", show(rss2));

    println!(
        "RESULT conns={} failed={failed} open_secs={open_secs:.2} rss_before_kib={} rss_held_kib={} rss_after_close_kib={} rss_per_conn_bytes={} rss_marginal_per_conn_bytes={}",
        n_held,
        show(rss0),
        show(rss1),
        show(rss2),
        per_conn.map(|b| format!("{b:.0}")).unwrap_or("?".into()),
        marginal.map(|b| format!("{b:.0}")).unwrap_or("?".into()),
    );
    println!(
        "RESULT msgs={} msg_bytes={} via_p50_us={:.1} via_p99_us={:.1} direct_p50_us={:.1} direct_p99_us={:.1}",
        args.msgs,
        args.msg_bytes,
        pct(&lat_via, 0.5),
        pct(&lat_via, 0.99),
        pct(&lat_direct, 0.5),
        pct(&lat_direct, 0.99),
    );
    if failed > 0 {
        return Err(format!("{failed} connections failed"));
    }
    Ok(())
}

/// Opens the connections numbered `range` through the proxy (at most
/// `--concurrency` handshakes in flight, each bounded by 10 s): the open
/// ones, how many failed, and the first error.
async fn open_batch(
    args: &Args,
    token: &str,
    via: &Target,
    range: std::ops::Range<usize>,
) -> Result<(Vec<Ws>, usize, Option<String>), String> {
    let sem = std::sync::Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in range {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let token = token.to_string();
        let origin = args.origin.clone();
        let src = args.sources[i % args.sources.len()];
        let src = (src != IpAddr::from([127, 0, 0, 1])).then_some(src);
        let via = via.clone();
        set.spawn(async move {
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                connect(&via, src, Some(&token), origin.as_deref()),
            )
            .await
            .unwrap_or_else(|_| Err("handshake timed out".into()));
            drop(permit);
            r
        });
    }
    let mut held = Vec::new();
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(ws)) => held.push(ws),
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Ok((held, failed, first_error))
}

fn show(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}
