//! Safe Linux namespace switching for Rust threads.
//!
//! Linux namespaces (net, mnt, uts, ipc, pid, user, cgroup, time) belong to
//! a **thread**, not to a process. Code that switches one with `setns(2)`
//! must make sure that what should run inside runs on that thread, that
//! nothing else runs there meanwhile, and that the thread is switched back
//! or never used again. nsguard makes the type system hold most of that:
//!
//! - [`Namespace`] is one open namespace, checked to be a namespace of the
//!   kind asked for before it is ever used; [`NsId`] is its identity.
//! - [`NsSet`] holds at most one namespace per [`NsKind`], read from a
//!   process, a directory, or the calling thread.
//! - [`NsSet::enter`] switches the calling thread and returns an
//!   [`NsGuard`] that is neither `Send` nor `Sync`: it cannot leave the
//!   thread it switched, and dropping it switches the thread back. A thread
//!   that cannot be switched back is *poisoned* ([`is_poisoned`]) and
//!   refuses all further nsguard work.
//! - Every kind follows its own kernel rules: net, uts, ipc, cgroup and pid
//!   can be entered by a thread; mnt, time and user cannot, and are refused
//!   with an error that says why and what to use instead.
//! - Every error is an [`Error`] naming the path, kind and errno involved.
//!
//! ```
//! use nsguard::{Namespace, NsKind, NsSet};
//!
//! // The namespaces this thread is in, by identity.
//! let here = NsSet::current(NsKind::Net | NsKind::Uts)?;
//! for ns in &here {
//!     println!("{}", ns.id()); // net:[4026531833], uts:[4026531838]
//! }
//!
//! // Entering them again switches nothing: the thread is already there.
//! let guard = here.enter()?;
//! assert!(guard.switched().is_empty());
//! guard.restore()?;
//!
//! // Files that are not namespaces of the kind asked for are refused.
//! assert!(Namespace::open(NsKind::Net, "/etc/hostname").is_err());
//! # Ok::<(), nsguard::Error>(())
//! ```
//!
//! Entering a network namespace made by `ip netns add blue` (needs
//! `CAP_SYS_ADMIN`):
//!
//! ```no_run
//! use nsguard::{Namespace, NsSet};
//!
//! let blue = NsSet::from(Namespace::named("blue")?);
//! let listener = {
//!     let _guard = blue.enter()?;
//!     // This thread is in `blue`: a socket made here lives in `blue`,
//!     // wherever it is used later.
//!     std::net::TcpListener::bind("127.0.0.1:8080")?
//! }; // the thread is back where it was
//! # drop(listener);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What runs inside
//!
//! While a guard lives, everything on its thread runs in the namespaces.
//! Threads started meanwhile inherit them for good (a thread pool started
//! lazily inside stays inside); work handed to a pool started earlier runs
//! outside. Some views do not follow the thread: `/sys/class/net` and
//! `/proc/self/net` show the namespaces of the mount namespace and of the
//! main thread, while netlink and `getifaddrs` follow the calling thread.
//!
//! # Kernel rules per kind
//!
//! | kind | a thread can enter and leave it | notes |
//! |---|---|---|
//! | net, uts, ipc, cgroup | yes | ipc: the thread leaves the System V `SEM_UNDO` list |
//! | pid | yes, `pid_for_children` only | processes forked inside land in it; creating a thread fails meanwhile |
//! | mnt | no: needs `unshare(CLONE_FS)`, which cannot be undone | use a dedicated thread or a process |
//! | time | no: `EUSERS` in a multithreaded process | use a process |
//! | user | no: `EINVAL` in a multithreaded process | use a process |

#![warn(missing_docs)]

pub use ns_macros::in_namespace;

pub use ns_core::{
    is_poisoned, poison_reason, Builder, Errno, Error, Executor, IntoIter, Iter, KindsIter,
    Namespace, NsGuard, NsId, NsKind, NsKinds, NsSet, Result, NETNS_DIRS,
};

#[doc(hidden)]
pub mod __private {
    pub use ns_core::__private::*;
}
