//! Where a thread is: its namespace links (`/proc/thread-self/ns/*`), read
//! through fds kept open per thread.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::kind::{NsKind, NsKinds};
use crate::sys;

thread_local! {
    /// `/proc/thread-self/ns` of this thread, opened `O_PATH`, with the tid
    /// it was opened on: a child forked from this thread inherits the
    /// thread-local but is another task, so the tid is checked on each use.
    static NS_DIR: RefCell<Option<(libc::pid_t, Rc<OwnedFd>)>> = const { RefCell::new(None) };
}

/// The directory [`ns_dir`] opens.
pub(crate) const THREAD_NS_DIR: &str = "/proc/thread-self/ns";

/// An fd of the calling thread's `/proc/thread-self/ns`, opened once per
/// thread: resolving names in it skips the walk through `/proc` that the
/// full path costs on every call.
pub(crate) fn ns_dir() -> Result<Rc<OwnedFd>> {
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
        kind: None,
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
    static LINKS: RefCell<Links> =
        const { RefCell::new((0, [const { None }; NsKind::COUNT])) };
}

/// The tid the links were opened on, and an fd of each kind's link.
type Links = (libc::pid_t, [Option<OwnedFd>; NsKind::COUNT]);

/// Reads the inode number of the calling thread's namespace of each of
/// `kinds` (for pid and time: the one its children get) from its link,
/// through an fd of the link kept open per thread: one `readlinkat` with an
/// empty path per kind. Hands each to `each` until that returns `false`;
/// returns whether every call returned `true`.
///
/// The number alone is exact for a namespace that is alive (the thread is
/// in it): live namespaces never share an inode of the one nsfs.
pub(crate) fn each_current_ino(
    kinds: NsKinds,
    mut each: impl FnMut(NsKind, u64) -> bool,
) -> Result<bool> {
    let error = |kind: NsKind, errno| Error::Io {
        op: "reading",
        kind: Some(kind),
        path: Some(Path::new(THREAD_NS_DIR).join(kind.thread_proc_name())),
        errno,
    };
    // Once per batch: a child forked from this thread inherits the fds of
    // the parent's links, which would read the parent thread.
    let tid = nix::unistd::gettid().as_raw();
    let mut read_all = |links: &mut Links| -> Result<bool> {
        if links.0 != tid {
            *links = (tid, [const { None }; NsKind::COUNT]);
        }
        for kind in kinds {
            let slot = &mut links.1[kind.index()];
            let link = match slot {
                Some(link) => link,
                None => {
                    let dir = ns_dir()?;
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
    match LINKS.try_with(|links| read_all(&mut links.borrow_mut())) {
        Ok(result) => result,
        // The thread is exiting: read through fds of its own instead.
        Err(_) => read_all(&mut (tid, [const { None }; NsKind::COUNT])),
    }
}
