//! Graceful shutdown of client connections: at SIGTERM every open
//! connection finishes its in-flight request and closes, and
//! [`Drain::drained`] resolves once the last one has.
//!
//! hyper-util's `GracefulShutdown` does the same job with a `watch`
//! channel whose `changed()` future is polled on every poll of every
//! connection, on every request's path. A connection
//! is polled by one task, whose waker does not change, so this registers
//! that waker once; a poll then costs an atomic load and a pointer compare.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use slab::Slab;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    /// Connections (watchers) not yet finished.
    open: AtomicUsize,
    /// Wakers of watched connections, each at the key its `Watched` holds.
    wakers: Mutex<Slab<Waker>>,
    /// Signalled when `open` drops to zero.
    idle: Notify,
}

/// The set of connections a shutdown waits for.
#[derive(Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

/// One accepted connection, counted until dropped (or until the future
/// from [`Watcher::watch`] ends).
pub struct Watcher {
    inner: Arc<Inner>,
}

impl Drain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a connection from the moment it is accepted (TLS handshakes
    /// included), before it is served.
    pub fn watcher(&self) -> Watcher {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        Watcher {
            inner: self.inner.clone(),
        }
    }

    /// Ask every connection, open or yet to start, to finish gracefully.
    pub fn start(&self) {
        self.inner.draining.store(true, Ordering::Release);
        let wakers: Vec<Waker> = {
            let wakers = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
            wakers.iter().map(|(_, w)| w.clone()).collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Connections not finished yet.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Resolves when every watched connection has ended.
    pub async fn drained(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// A connection that can be asked to finish its in-flight work and end.
pub trait Graceful: Future<Output = Result<(), Self::Error>> {
    type Error;
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl Watcher {
    /// `conn`, told to shut down gracefully once a drain starts, or once
    /// `shed` is set (the connection misbehaves; see `proxy::Conn`).
    pub fn watch<C: Graceful + Unpin>(self, conn: C, shed: Arc<AtomicBool>) -> Watched<C> {
        Watched {
            conn,
            watcher: self,
            slot: None,
            signalled: false,
            shed,
        }
    }
}

/// A connection under a [`Drain`].
pub struct Watched<C> {
    /// `Unpin` (`downstream::Connection` boxes its own future once), so
    /// the wrapper needs neither pin projection nor a second box.
    conn: C,
    watcher: Watcher,
    /// Our slot in the waker table and the waker stored there.
    slot: Option<(usize, Waker)>,
    signalled: bool,
    shed: Arc<AtomicBool>,
}

impl<C: Graceful + Unpin> Future for Watched<C> {
    type Output = Result<(), C::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let inner = &this.watcher.inner;
        if !matches!(&this.slot, Some((_, w)) if w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            let mut wakers = inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
            let key = match this.slot.take() {
                Some((key, _)) => {
                    wakers[key] = waker.clone();
                    key
                }
                None => wakers.insert(waker.clone()),
            };
            this.slot = Some((key, waker));
        }
        if !this.signalled
            && (inner.draining.load(Ordering::Acquire) || this.shed.load(Ordering::Relaxed))
        {
            this.signalled = true;
            Pin::new(&mut this.conn).graceful_shutdown();
        }
        Pin::new(&mut this.conn).poll(cx)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        if let Some((key, _)) = self.slot.take() {
            let mut wakers = self
                .watcher
                .inner
                .wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            wakers.remove(key);
        }
    }
}
