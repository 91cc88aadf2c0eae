//! Marks on a thread: whether it is poisoned, and how many guards are live
//! on it.

use std::cell::{Cell, RefCell};

use crate::error::{Error, Result};

thread_local! {
    /// Why this thread is poisoned, if it is.
    static POISON: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many [`NsGuard`](crate::NsGuard)s are live on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether the calling thread is poisoned.
///
/// A thread is poisoned when nsguard could not put it back into the
/// namespaces it was in: a restore failed, or guards were dropped out of
/// order. From then on every nsguard call on the thread fails with
/// [`Error::Poisoned`], because the thread's namespaces are no longer what
/// its code expects. A poisoned thread stays poisoned until it exits: let
/// it finish, and do namespace work on another thread.
///
/// ```
/// assert!(!nsguard::is_poisoned());
/// ```
pub fn is_poisoned() -> bool {
    poison_reason().is_some()
}

/// What poisoned the calling thread, or `None` if it is not poisoned.
/// See [`is_poisoned`].
pub fn poison_reason() -> Option<String> {
    POISON
        .try_with(|p| p.borrow().clone())
        .unwrap_or_else(|_| Some("the thread is exiting (thread-local state destroyed)".into()))
}

/// `Err(Error::Poisoned)` if the calling thread is poisoned.
///
/// Every call runs this: the look at the mark is inlined into it, and
/// the error is built out of line.
#[inline]
pub(crate) fn check() -> Result<()> {
    if POISON.try_with(|p| p.borrow().is_none()) == Ok(true) {
        return Ok(());
    }
    poisoned()
}

/// [`check`]'s error, for a thread that is poisoned or exiting.
#[cold]
#[inline(never)]
fn poisoned() -> Result<()> {
    match poison_reason() {
        None => Ok(()),
        Some(reason) => Err(Error::Poisoned { reason }),
    }
}

/// Marks the calling thread as poisoned. The first reason is kept.
pub(crate) fn poison(reason: String) {
    crate::trace::event!(tracing::Level::ERROR, reason = %reason, "thread poisoned");
    let _ = POISON.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            *p = Some(reason);
        }
    });
}

/// Registers a new guard; returns its level (1 for the outermost).
pub(crate) fn push_guard() -> usize {
    DEPTH
        .try_with(|d| {
            let level = d.get() + 1;
            d.set(level);
            level
        })
        .unwrap_or(usize::MAX)
}

/// The number of live guards on the calling thread.
#[inline]
pub(crate) fn depth() -> usize {
    DEPTH.try_with(Cell::get).unwrap_or(usize::MAX)
}

/// Unregisters the guard at `level`, the innermost one.
pub(crate) fn pop_guard(level: usize) {
    let _ = DEPTH.try_with(|d| d.set(level.saturating_sub(1)));
}
