//! Per-thread state: poisoning, and the depth of live guards.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::kind::NsKind;
use crate::sys;

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
pub(crate) fn check() -> Result<()> {
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
pub(crate) fn depth() -> usize {
    DEPTH.try_with(Cell::get).unwrap_or(usize::MAX)
}

/// Unregisters the guard at `level`, the innermost one.
pub(crate) fn pop_guard(level: usize) {
    let _ = DEPTH.try_with(|d| d.set(level.saturating_sub(1)));
}

thread_local! {
    /// `/proc/thread-self/ns` of this thread, opened `O_PATH`, with the tid
    /// it was opened on: a child forked from this thread inherits the
    /// thread-local but is another task, so the tid is checked on each use.
    static NS_DIR: RefCell<Option<(libc::pid_t, Rc<OwnedFd>)>> = const { RefCell::new(None) };
}

/// The directory [`ns_dir`] opens.
pub(crate) const THREAD_NS_DIR: &str = "/proc/thread-self/ns";

/// An fd of the calling thread's `/proc/thread-self/ns` (needed to look up
/// `kind`, which errors name), opened once per
/// thread: resolving names in it skips the walk through `/proc` that the
/// full path costs on every call.
pub(crate) fn ns_dir(kind: NsKind) -> Result<Rc<OwnedFd>> {
    let tid = nix::unistd::gettid().as_raw();
    let cached = NS_DIR
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(t, _)| *t == tid)
                .map(|(_, fd)| Rc::clone(fd))
        })
        .ok()
        .flatten();
    if let Some(fd) = cached {
        return Ok(fd);
    }
    let fd = sys::open_dir(Path::new(THREAD_NS_DIR)).map_err(|errno| Error::Io {
        op: "opening",
        kind,
        path: Some(THREAD_NS_DIR.into()),
        errno,
    })?;
    let fd = Rc::new(fd);
    let _ = NS_DIR.try_with(|c| *c.borrow_mut() = Some((tid, Rc::clone(&fd))));
    Ok(fd)
}

thread_local! {
    /// This thread's `/proc/thread-self/ns/<kind>` links themselves, opened
    /// `O_PATH|O_NOFOLLOW` on first use, with the tid they were opened on
    /// (as for [`NS_DIR`]).
    static LINKS: RefCell<(libc::pid_t, [Option<OwnedFd>; NsKind::COUNT])> =
        const { RefCell::new((0, [const { None }; NsKind::COUNT])) };
}

/// Reads the inode number of the calling thread's namespace of each of
/// `kinds` (for pid and time: the one its children get) from its link,
/// through an fd of the link kept open per thread: one `readlinkat` with an
/// empty path per kind. Hands each to `each` until that returns `false`;
/// returns whether every call returned `true`.
///
/// The number alone is exact for a namespace that is alive (the thread is
/// in it): live namespaces never share an inode of the one nsfs.
pub(crate) fn each_current_ino(
    kinds: impl IntoIterator<Item = NsKind>,
    mut each: impl FnMut(NsKind, u64) -> bool,
) -> Result<bool> {
    let error = |kind: NsKind, errno| Error::Io {
        op: "reading",
        kind,
        path: Some(Path::new(THREAD_NS_DIR).join(kind.thread_proc_name())),
        errno,
    };
    // Once per batch: a child forked from this thread inherits the fds of
    // the parent's links, which would read the parent thread.
    let tid = nix::unistd::gettid().as_raw();
    let read_all = |links: &mut (libc::pid_t, [Option<OwnedFd>; NsKind::COUNT])| {
        if links.0 != tid {
            *links = (tid, [const { None }; NsKind::COUNT]);
        }
        for kind in kinds {
            let slot = &mut links.1[kind.index()];
            let link = match slot {
                Some(link) => link,
                None => {
                    let dir = ns_dir(kind)?;
                    let link = sys::open_link_at(dir.as_fd(), kind.thread_proc_name())
                        .map_err(|errno| error(kind, errno))?;
                    slot.insert(link)
                }
            };
            let ino = sys::link_ino(link.as_fd()).map_err(|errno| error(kind, errno))?;
            if !each(kind, ino) {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut job = Some(read_all);
    let kept = LINKS.try_with(|links| job.take().map(|read| read(&mut links.borrow_mut())));
    match (kept, job) {
        (Ok(Some(result)), _) => result,
        // The thread is exiting: read through fds of its own instead.
        (_, Some(read)) => read(&mut (tid, [const { None }; NsKind::COUNT])),
        (_, None) => Err(Error::Worker {
            reason: "the thread's namespace links could not be read".into(),
        }),
    }
}
