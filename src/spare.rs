//! Buffers kept per thread for the next user on the same thread: a
//! request's head buffer and span list, a relay's read buffer. Taking one
//! is a pop from a thread-local list, so the allowed path does not
//! allocate (and grow) a new one per request.
//!
//! A pool is declared where its buffers are used:
//!
//! ```
//! use clawgate::spare::{self, Spares};
//!
//! thread_local! {
//!     static SPARE: Spares<Vec<u8>> = const { Spares::new(256) };
//! }
//! let buf = spare::take(&SPARE).unwrap_or_else(|| Vec::with_capacity(1024));
//! spare::give_back(&SPARE, buf);
//! ```

use std::cell::RefCell;
use std::thread::LocalKey;

/// One thread's kept buffers, at most `keep` of them.
pub struct Spares<T> {
    list: RefCell<Vec<T>>,
    keep: usize,
}

impl<T> Spares<T> {
    pub const fn new(keep: usize) -> Spares<T> {
        Spares {
            list: RefCell::new(Vec::new()),
            keep,
        }
    }
}

/// A kept buffer, if this thread has one (none while the thread ends).
#[inline]
pub fn take<T: 'static>(spares: &'static LocalKey<Spares<T>>) -> Option<T> {
    spares
        .try_with(|s| s.list.borrow_mut().pop())
        .ok()
        .flatten()
}

/// Keep `value` for the next [`take`] on this thread, unless as many as
/// the pool keeps are kept already (then it is dropped). The caller clears
/// it first and decides which sizes are worth keeping.
#[inline]
pub fn give_back<T: 'static>(spares: &'static LocalKey<Spares<T>>, value: T) {
    let _ = spares.try_with(|s| {
        let mut list = s.list.borrow_mut();
        if list.len() < s.keep {
            list.push(value);
        }
    });
}

/// How many this thread keeps.
#[cfg(test)]
pub fn kept<T: 'static>(spares: &'static LocalKey<Spares<T>>) -> usize {
    spares.with(|s| s.list.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TWO: Spares<Vec<u8>> = const { Spares::new(2) };
    }

    #[test]
    fn keeps_up_to_its_bound_and_hands_them_out_again() {
        assert!(take(&TWO).is_none());
        for cap in [10, 20, 30] {
            give_back(&TWO, Vec::with_capacity(cap));
        }
        let got: Vec<usize> = std::iter::from_fn(|| take(&TWO))
            .map(|v| v.capacity())
            .collect();
        assert_eq!(got.len(), 2, "the third was dropped");
        assert_eq!(kept(&TWO), 0);
        assert!(got.iter().all(|&c| (10..30).contains(&c)), "{got:?}");
    }
}
