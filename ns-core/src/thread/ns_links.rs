//! Where a thread is: its namespace links (`/proc/thread-self/ns/*`), read
//! through fds kept open per thread.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::kind::{NsKind, NsKinds};
use crate::sys;
use crate::sys::fork_local;

/// Which task a per-thread cache belongs to: the fork generation, and
/// the thread id where the generation does not tell every child apart. A
/// child forked from a thread inherits its thread-locals but is another
/// task, and may even have the same thread id (the first thread of a new
/// pid namespace is 1, like its parent's may be): the generation tells
/// them apart. Only where the kernel could not wipe a page in children
/// (a child of a raw `clone(2)` then keeps the generation) is the thread
/// id read, a system call on every look at where the thread is.
type TaskKey = (libc::pid_t, u64);

fn task_key() -> TaskKey {
    fork_local::count_forks();
    let generation = fork_local::generation();
    if fork_local::tells_raw_clones_apart() {
        (0, generation)
    } else {
        (nix::unistd::gettid().as_raw(), generation)
    }
}

thread_local! {
    /// `/proc/thread-self/ns` of this thread, opened `O_PATH`, with the
    /// task it was opened on ([`TaskKey`]), checked on each use.
    static NS_DIR: RefCell<Option<(TaskKey, Rc<OwnedFd>)>> = const { RefCell::new(None) };
}

/// The directory [`ns_dir`] opens.
pub(crate) const THREAD_NS_DIR: &str = "/proc/thread-self/ns";

/// An fd of the calling thread's `/proc/thread-self/ns`, opened once per
/// thread: resolving names in it skips the walk through `/proc` that the
/// full path costs on every call.
pub(crate) fn ns_dir() -> Result<Rc<OwnedFd>> {
    let key = task_key();
    let cached = NS_DIR
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, fd)| Rc::clone(fd))
        })
        .ok()
        .flatten();
    if let Some(fd) = cached {
        return Ok(fd);
    }
    let fd = sys::open_dir(Path::new(THREAD_NS_DIR)).map_err(|errno| match errno {
        // /proc is mounted (it has an init) but does not show this thread.
        Errno::ENOENT if Path::new("/proc/1").exists() => Error::ForeignProc {
            path: THREAD_NS_DIR.into(),
        },
        errno => Error::Io {
            op: "opening",
            kind: None,
            path: Some(THREAD_NS_DIR.into()),
            errno,
        },
    })?;
    let fd = Rc::new(fd);
    let _ = NS_DIR.try_with(|c| *c.borrow_mut() = Some((key, Rc::clone(&fd))));
    Ok(fd)
}

thread_local! {
    /// This thread's `/proc/thread-self/ns/<kind>` links themselves, opened
    /// `O_PATH|O_NOFOLLOW` on first use, with the task they were opened on
    /// (as for [`NS_DIR`]).
    static LINKS: RefCell<Links> =
        const { RefCell::new(((0, 0), [const { None }; NsKind::COUNT])) };
}

/// The task the links were opened on, and an fd of each kind's link.
type Links = (TaskKey, [Option<OwnedFd>; NsKind::COUNT]);

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
    let key = task_key();
    let mut read_all = |links: &mut Links| -> Result<bool> {
        if links.0 != key {
            *links = (key, [const { None }; NsKind::COUNT]);
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
        Err(_) => read_all(&mut (key, [const { None }; NsKind::COUNT])),
    }
}
