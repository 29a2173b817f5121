//! Timeouts that almost never fire, at a tenth of a second's resolution.
//!
//! Every keep-alive request arms two of them: hyper's header-read timeout
//! (armed while it waits for the next request head, dropped when the head
//! arrives) and the wait for the gateway's response. With tokio's timer
//! wheel each costs an entry insert, a removal and clock reads per
//! request, for a timeout that almost never fires. Here a
//! timeout is a deadline in a shared table, registered only if its future
//! is actually polled while pending, and every [`TICK`] one background
//! thread (or, under `clawgate run`, one task on the runtime: see
//! [`tick_on_runtime`]) compares the table with the clock and wakes what
//! is due. A timeout fires up to one tick late, which for limits
//! measured in seconds is nothing.
//!
//! [`CoarseTimer`] is the `hyper::rt::Timer` for HTTP/1 connections;
//! [`timeout`] wraps any future. A [`Deadline`] is the same for a
//! connection that waits request after request (the lean loop for each
//! head, a gateway connection for each response): it is in the table for
//! the connection's whole life and arming it is an atomic store, where a
//! [`Sleep`] takes the table's lock and a waker clone each time it waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use crate::slots::Slots;

/// How often due timeouts are looked for.
pub const TICK: Duration = Duration::from_millis(100);

struct Wheel {
    start: Instant,
    /// Milliseconds since `start`, as of the last tick.
    now_ms: AtomicU64,
    /// Whether the ticking thread runs (if not, [`now_ms`] reads the clock).
    ticking: bool,
    /// (deadline in ms since start, who to wake until woken).
    slots: Mutex<Slots<(u64, Option<Waker>)>>,
    /// Every [`Deadline`] alive, armed or not.
    deadlines: Mutex<Slots<Arc<Armed>>>,
}

/// A [`Deadline`]'s shared half: when (ms since start; `DISARMED` for
/// never) and whom to wake.
struct Armed {
    at_ms: AtomicU64,
    waker: AtomicWaker,
}

const DISARMED: u64 = u64::MAX;

/// The runtime that ticks the wheel instead of a thread of its own: set
/// by [`tick_on_runtime`], or to `None` by the wheel's start.
static TICK_ON: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();

/// Tick the wheel with a task on `handle`'s runtime rather than on a
/// thread of its own, for a process whose runtime lives as long as it
/// does (`clawgate run`). Why: a second thread shares the file table, and
/// the kernel then counts a reference on every system call's file (on
/// loopback under load, about half a percent of the proxy's CPU), where
/// a process of one thread skips that as nginx's and HAProxy's workers
/// do; a tick on the runtime also wakes a due connection without a
/// cross-thread wake-up. Takes effect only before the timer's first use.
pub fn tick_on_runtime(handle: tokio::runtime::Handle) {
    let _ = TICK_ON.set(Some(handle));
}

fn wheel() -> &'static Wheel {
    static WHEEL: OnceLock<&'static Wheel> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let start = Instant::now();
        let tick = || {
            if let Some(w) = WHEEL.get() {
                w.tick();
            }
        };
        let ticking = match TICK_ON.get_or_init(|| None) {
            Some(runtime) => {
                runtime.spawn(async move {
                    let mut every = tokio::time::interval(TICK);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        every.tick().await;
                        tick();
                    }
                });
                true
            }
            None => std::thread::Builder::new()
                .name("clawgate-timer".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    tick();
                })
                .is_ok(),
        };
        Box::leak(Box::new(Wheel {
            start,
            now_ms: AtomicU64::new(0),
            ticking,
            slots: Mutex::new(Slots::default()),
            deadlines: Mutex::new(Slots::default()),
        }))
    })
}

impl Wheel {
    fn now_ms(&self) -> u64 {
        if self.ticking {
            self.now_ms.load(Ordering::Acquire)
        } else {
            self.start.elapsed().as_millis() as u64
        }
    }

    fn deadline_ms(&self, at: Instant) -> u64 {
        // Rounded up: never early.
        let d = at.saturating_duration_since(self.start);
        d.as_millis() as u64 + u64::from(d.subsec_nanos() % 1_000_000 != 0)
    }

    fn tick(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.now_ms.store(now, Ordering::Release);
        let due: Vec<Waker> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .iter_mut()
                .filter(|(deadline, _)| *deadline <= now)
                .filter_map(|(_, waker)| waker.take())
                .collect()
        };
        for w in due {
            w.wake();
        }
        // Woken every tick until disarmed: the owner sees the expiry at
        // its next poll and stops waiting.
        let deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        for d in deadlines.iter() {
            if d.at_ms.load(Ordering::Acquire) <= now {
                d.waker.wake();
            }
        }
    }
}

/// Milliseconds since the timer started, as of the last tick: a clock
/// without a clock read, for ages measured in seconds.
pub fn now_ms() -> u64 {
    wheel().now_ms()
}

/// A reusable deadline (see the module's doc): [`Deadline::arm`] before a
/// wait, [`Deadline::poll_expired`] while waiting, [`Deadline::disarm`]
/// after. One owner at a time polls it.
pub struct Deadline {
    armed: Arc<Armed>,
    index: usize,
}

impl Deadline {
    pub fn new() -> Deadline {
        let armed = Arc::new(Armed {
            at_ms: AtomicU64::new(DISARMED),
            waker: AtomicWaker::new(),
        });
        let mut deadlines = wheel().deadlines.lock().unwrap_or_else(|e| e.into_inner());
        let index = deadlines.put(None, armed.clone());
        Deadline { armed, index }
    }

    /// Expire `after` from the last tick (no clock read).
    pub fn arm(&self, after: Duration) {
        let at = wheel().now_ms() + after.as_millis() as u64;
        self.armed.at_ms.store(at, Ordering::Release);
    }

    pub fn disarm(&self) {
        self.armed.at_ms.store(DISARMED, Ordering::Release);
    }

    /// Ready once the armed time has passed (a tick late at most); never
    /// while disarmed.
    pub fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let w = wheel();
        // Registered first, then checked: a tick between the two still
        // finds the waker.
        self.armed.waker.register(cx.waker());
        if w.now_ms() >= self.armed.at_ms.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// `fut`, or `Err(Elapsed)` once `after` has passed.
    pub async fn timeout<F: Future>(&self, after: Duration, fut: F) -> Result<F::Output, Elapsed> {
        let mut fut = std::pin::pin!(fut);
        self.arm(after);
        let out = std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            self.poll_expired(cx).map(|()| Err(Elapsed))
        })
        .await;
        self.disarm();
        out
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new()
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let mut deadlines = wheel().deadlines.lock().unwrap_or_else(|e| e.into_inner());
        deadlines.remove(self.index);
    }
}

/// A deadline; resolves once the tick after it has passed.
pub struct Sleep {
    deadline_ms: u64,
    /// Slot in the table and the waker stored there, once polled pending.
    registered: Option<(usize, Waker)>,
}

impl Sleep {
    pub fn until(at: Instant) -> Sleep {
        Sleep {
            deadline_ms: wheel().deadline_ms(at),
            registered: None,
        }
    }

    /// `after` from the last tick (no clock read).
    pub fn after(after: Duration) -> Sleep {
        let w = wheel();
        Sleep {
            deadline_ms: w.now_ms() + after.as_millis() as u64,
            registered: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let w = wheel();
        if w.now_ms() >= this.deadline_ms {
            return Poll::Ready(());
        }
        match &this.registered {
            Some((_, waker)) if waker.will_wake(cx.waker()) => {}
            _ => {
                let waker = cx.waker().clone();
                let mut slots = w.slots.lock().unwrap_or_else(|e| e.into_inner());
                let held = this.registered.take().map(|(i, _)| i);
                let index = slots.put(held, (this.deadline_ms, Some(waker.clone())));
                this.registered = Some((index, waker));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((index, _)) = self.registered.take() {
            let mut slots = wheel().slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.remove(index);
        }
    }
}

impl hyper::rt::Sleep for Sleep {}

/// hyper's timer for HTTP/1 connections (the header-read timeout).
#[derive(Clone, Copy, Debug, Default)]
pub struct CoarseTimer;

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep::after(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep::until(deadline))
    }
}

/// `fut`, or `Err(Elapsed)` once `after` has passed (give or take a tick).
pub async fn timeout<F: Future>(after: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = Sleep::after(after);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(&mut sleep).poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// A [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleep_ends_after_its_deadline_and_not_before() {
        let started = Instant::now();
        Sleep::after(Duration::from_millis(250)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let started = Instant::now();
        Sleep::until(started + Duration::from_millis(300)).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn timeout_returns_the_value_or_elapsed() {
        assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
        let never = std::future::pending::<()>();
        let started = Instant::now();
        assert_eq!(
            timeout(Duration::from_millis(200), never).await,
            Err(Elapsed)
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_deadline_fires_when_armed_and_not_when_disarmed() {
        let d = Deadline::new();
        let never = std::future::pending::<()>();
        let started = Instant::now();
        assert_eq!(
            d.timeout(Duration::from_millis(200), never).await,
            Err(Elapsed)
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Reused: a value in time, then disarmed for good.
        assert_eq!(d.timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(d.poll_expired(&mut cx).is_pending(), "disarmed");
        d.arm(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(d.poll_expired(&mut cx).is_ready(), "armed and passed");
    }

    #[test]
    fn dropped_deadlines_leave_the_table() {
        for _ in 0..3 {
            let held: Vec<Deadline> = (0..100).map(|_| Deadline::new()).collect();
            drop(held);
        }
        let deadlines = wheel().deadlines.lock().unwrap();
        // Other tests in this process may hold a few.
        assert!(
            deadlines.len() < 100,
            "{} deadlines still held",
            deadlines.len()
        );
        assert!(deadlines.capacity() < 300, "{} slots", deadlines.capacity());
    }

    #[tokio::test]
    async fn dropped_sleeps_give_their_slots_back() {
        for _ in 0..3 {
            let mut sleeps: Vec<_> = (0..100)
                .map(|_| Box::pin(Sleep::after(Duration::from_secs(60))))
                .collect();
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            for s in &mut sleeps {
                assert!(s.as_mut().poll(&mut cx).is_pending());
            }
        }
        let slots = wheel().slots.lock().unwrap();
        let used = slots.len();
        // Other tests in this process may hold a few.
        assert!(used < 100, "{used} slots still held");
        assert!(slots.capacity() < 300, "{} slots", slots.capacity());
    }
}
