//! Heap allocations on the proxy's thread per request, counted by a global
//! allocator that counts only on the thread clawgate runs on.
//!
//! clawgate runs here as `clawgate run` runs it on one CPU: a current-thread
//! runtime, on a thread of its own. The upstream (hyper) and the client
//! run on the test's runtime, so what they allocate is not counted. After
//! a warm-up that fills the per-thread pools, a run of allowed requests on
//! one keep-alive connection must allocate nothing: every buffer the allow
//! path needs is kept per connection or per thread (`spare`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{ConfigDir, MemberSpec, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Counting;

thread_local! {
    /// Where this thread's allocations are counted, if it opted in (each
    /// test has its own counter, so tests may run side by side).
    static COUNTED: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
}

fn note() {
    if let Ok(Some(counter)) = COUNTED.try_with(Cell::get) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged; counting touches
// only a const-initialised thread-local and an atomic, neither allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Start clawgate on a thread of its own, its allocations counted in
/// `counter`; returns its address.
fn start_counted(dir: PathBuf, counter: &'static AtomicU64) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = clawgate::runtime::server::Server::start(&dir)
                .await
                .unwrap_or_else(|e| panic!("clawgate failed to start: {e}"));
            tx.send(server.addr).unwrap();
            COUNTED.set(Some(counter));
            // Serve until the test binary exits.
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("clawgate's thread started")
}

/// Send `n` allowed GETs on `conn`, reading each response whole, with one
/// buffer for the whole run. Returns the last response's status line.
async fn allowed_requests(conn: &mut TcpStream, n: usize, buf: &mut Vec<u8>) -> String {
    const REQUEST: &[u8] =
        b"GET /alloc HTTP/1.1\r\nhost: clawgate\r\nauthorization: Bearer tok-alice\r\n\r\n";
    let mut status = String::new();
    for _ in 0..n {
        conn.write_all(REQUEST).await.unwrap();
        buf.clear();
        let (head_end, body_len) = loop {
            let mut chunk = [0u8; 4096];
            let got = conn.read(&mut chunk).await.unwrap();
            assert!(got > 0, "clawgate closed the connection");
            buf.extend_from_slice(&chunk[..got]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).unwrap();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .expect("a content-length");
                break (end + 4, len);
            }
        };
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            let got = conn.read(&mut chunk).await.unwrap();
            assert!(got > 0, "clawgate closed the connection mid-body");
            buf.extend_from_slice(&chunk[..got]);
        }
        status = String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == b'\r').unwrap()])
            .into_owned();
    }
    status
}

/// Allocations per allowed request on clawgate's thread, over 2,000
/// requests after 500 of warm-up, with `[log] access` set to `access_log`.
async fn per_request_after_warm_up(access_log: &str, counter: &'static AtomicU64) -> f64 {
    let upstream = Upstream::start().await;
    let mut cfg = ConfigDir::new(
        &[("main", upstream.url())],
        &[MemberSpec::new("alice", "tok-alice")],
    );
    cfg.base = cfg.base.replace(
        "access = \"access.log\"",
        &format!("access = \"{access_log}\""),
    );
    cfg.write_base("");
    let addr = start_counted(cfg.path().to_path_buf(), counter);

    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::with_capacity(16 * 1024);
    let status = allowed_requests(&mut conn, 500, &mut buf).await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    const MEASURED: usize = 2_000;
    let before = counter.load(Ordering::Relaxed);
    let status = allowed_requests(&mut conn, MEASURED, &mut buf).await;
    let after = counter.load(Ordering::Relaxed);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        upstream.count(),
        500 + MEASURED,
        "every request reached the upstream"
    );
    if access_log != "off" {
        // The lines were written, all of them (within the writer's clock).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cfg.access_log().len() < 500 + MEASURED {
            assert!(
                std::time::Instant::now() < deadline,
                "{} access-log lines of {}",
                cfg.access_log().len(),
                500 + MEASURED
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    (after - before) as f64 / MEASURED as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_request_allocates_nothing_on_the_proxys_thread() {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let per_request = per_request_after_warm_up("off", &COUNT).await;
    assert!(
        per_request < 0.01,
        "{per_request:.3} allocations per allowed request on clawgate's thread (access log off)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nor_with_the_access_log_on() {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let per_request = per_request_after_warm_up("access.log", &COUNT).await;
    assert!(
        per_request < 0.01,
        "{per_request:.3} allocations per allowed request on clawgate's thread (access log on)"
    );
}
