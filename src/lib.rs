//! Safe Linux namespace switching for Rust threads.
//!
//! Linux namespaces (net, mnt, uts, ipc, pid, user, cgroup, time) belong to
//! a **thread**, not to a process. Code that switches one with `setns(2)`
//! must make sure that what should run inside runs on that thread, that
//! nothing else runs there meanwhile, and that the thread is switched back
//! or never used again. nsguard makes the type system hold most of that:
//!
//! - [`#[in_namespace(net = path)]`](in_namespace) rewrites a function so
//!   that its body runs on a pinned worker thread that has entered the
//!   namespaces; [`NsSet::run`] does the same for a closure. The caller's
//!   thread is never switched, and the body may borrow from it.
//! - [`NsSet::enter`] switches the calling thread itself and returns an
//!   [`NsGuard`] that is neither `Send` nor `Sync`: it cannot leave the
//!   thread it switched, and dropping it switches the thread back. A thread
//!   that cannot be switched back is *poisoned* ([`is_poisoned`]) and
//!   refuses all further nsguard work.
//! - [`Namespace`] is one open namespace, checked to be a namespace of the
//!   kind asked for before it is ever used; [`NsSet`] holds at most one per
//!   [`NsKind`], read from a process, a directory, or the calling thread.
//! - Async: [`NsSet::run_async`] returns a future that needs no runtime;
//!   `#[in_namespace] async fn` polls its body inside (with the `tokio`
//!   feature, on the caller's runtime).
//! - [`NsSet::unshare`] and [`Unshare`] create namespaces (user included)
//!   without switching the caller; [`CommandExt::spawn_in`] starts a process
//!   in every kind of a set; [`netns`] names network namespaces as
//!   `ip netns` does; [`Pool`] keeps fresh sets ready.
//! - Every kind follows its own kernel rules, and every error is an
//!   [`Error`] naming the path, kind and errno involved, and what to do.
//!
//! ```no_run
//! use std::path::Path;
//!
//! // The body runs on a worker inside the network namespace at `netns`;
//! // `netns` is an argument, evaluated at each call.
//! #[nsguard::in_namespace(net = netns)]
//! fn interfaces(netns: &Path) -> std::io::Result<Vec<String>> {
//!     Ok(nix::net::if_::if_nameindex()?
//!         .iter()
//!         .map(|i| i.name().to_string_lossy().into_owned())
//!         .collect())
//! }
//!
//! println!("{:?}", interfaces(Path::new("/run/netns/blue"))?); // ["lo", "eth0"]
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Without the macro, and with a borrowed result:
//!
//! ```no_run
//! use nsguard::{Namespace, NsKind, NsSet};
//!
//! let container = NsSet::of_pid(1234, NsKind::Net | NsKind::Uts)?;
//! let mut seen = Vec::new();
//! container.run(|| seen.push(nix::unistd::gethostname()))?; // on a worker, inside
//!
//! // Or switch this very thread, for as long as the guard lives:
//! {
//!     let _guard = NsSet::from(Namespace::named("blue")?).enter()?;
//!     let listener = std::net::TcpListener::bind("127.0.0.1:8080")?; // lives in `blue`
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Creating namespaces (user included, without switching the caller) and
//! starting processes in them:
//!
//! ```
//! use std::process::{Command, Stdio};
//! use nsguard::{CommandExt, NsKind, NsSet};
//!
//! let sandbox = NsSet::unshare(NsKind::User | NsKind::Net | NsKind::Uts)?;
//! let out = Command::new("id")
//!     .arg("-u")
//!     .stdout(Stdio::piped()) // else the child writes to this process's stdout
//!     .spawn_in(&sandbox)?
//!     .wait_with_output()?;
//! assert_eq!(out.stdout, b"0\n"); // root inside, nobody special outside
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Handles are checked and identified; this runs without privilege:
//!
//! ```
//! use nsguard::{Namespace, NsKind, NsSet};
//!
//! let here = NsSet::current(NsKind::Net | NsKind::Uts)?;
//! for ns in &here {
//!     println!("{}", ns.id()); // net:[4026531833], uts:[4026531838]
//! }
//! // Entering them again switches nothing: the thread is already there.
//! let guard = here.enter()?;
//! assert!(guard.switched().is_empty());
//! guard.restore()?;
//! // Files that are not namespaces of the kind asked for are refused.
//! assert!(Namespace::open("/etc/hostname", NsKind::Net).is_err());
//! # Ok::<(), nsguard::Error>(())
//! ```
//!
//! # Workers or the guard?
//!
//! [`NsSet::run`] and the macro hand the body to a worker of an
//! [`Executor`]: a warm call (a worker already in the namespaces, spinning)
//! is a sub-microsecond handoff, the caller's thread is untouched, and every
//! kind but user and time works, mnt included. After each call the worker
//! checks, off the caller's latency path, that the body left it where it
//! was; see [`ExecutorBuilder::check_after_call`] for what that costs.
//! [`NsSet::enter`] switches the calling thread in place: no other thread is
//! involved, but only net, uts, ipc, cgroup and pid can be entered, and
//! everything on the thread runs inside while the guard lives.
//!
//! # What runs inside
//!
//! Threads started inside (by a body, or while a guard lives) inherit the
//! namespaces for good: a thread pool started lazily inside stays inside;
//! work handed to a pool started elsewhere runs outside. Some views do not
//! follow the thread: `/sys/class/net` and `/proc/self/net` show the
//! namespaces of the mount namespace and of the main thread, while netlink
//! and `getifaddrs` follow the calling thread. A socket keeps the network
//! namespace it was created in.
//!
//! # Kernel rules per kind
//!
//! | kind | [`NsSet::enter`] (this thread) | [`NsSet::run`] (a worker) | notes |
//! |---|---|---|---|
//! | net, uts, ipc, cgroup | yes | yes | ipc: the thread leaves the System V `SEM_UNDO` list |
//! | pid | yes, `pid_for_children` only | yes | processes forked inside land in it; creating a thread fails there |
//! | mnt | no: needs `unshare(CLONE_FS)`, which cannot be undone | yes: the worker then serves that mount namespace only | |
//! | time | no: `EUSERS` in a multithreaded process | no | create with [`NsSet::unshare`]; enter with [`CommandExt::spawn_in`] |
//! | user | no: `EINVAL` in a multithreaded process | no | create with [`NsSet::unshare`] (a forked helper); enter with [`CommandExt::spawn_in`] |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("nsguard supports Linux only: namespaces are a feature of the Linux kernel");

#[cfg(target_os = "linux")]
pub use nsguard_macros::in_namespace;

#[cfg(target_os = "linux")]
pub use nsguard_core::netns;
#[cfg(all(target_os = "linux", feature = "tokio"))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use nsguard_core::runtime;
#[cfg(target_os = "linux")]
pub use nsguard_core::{
    is_poisoned, poison_reason, stray_threads, CommandExt, Credentials, Errno, Error, Executor,
    ExecutorBuilder, IdMap, KindsIter, Namespace, NsGuard, NsId, NsKind, NsKinds, NsSet,
    ParseKindError, Pool, PoolBuilder, Result, Retired, RunAsync, SetIntoIter, SetIter,
    SharedError, Stats, StrayThread, ThreadOwner, Unshare, WorkerCause, NETNS_DIRS,
};
#[cfg(all(target_os = "linux", feature = "tower"))]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use nsguard_core::{BoxError, ServiceInside};

#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod __private {
    pub use nsguard_core::__private::*;
}
