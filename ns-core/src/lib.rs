//! The runtime of [nsguard](https://docs.rs/nsguard): namespace handles,
//! sets of them, the thread guard, the executor's pinned workers, and the
//! kernel rules of each kind.
//!
//! Depend on `nsguard`, which re-exports this crate; its documentation is
//! the place to start. `ARCHITECTURE.md` at the root of the repository maps
//! the modules below: each layer uses only the layers before it.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml): feature-gated items
// say which feature they need.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// Namespaces are a Linux kernel feature: elsewhere, one clear error instead
// of dozens of unresolved names (the Linux-only dependencies are absent).
#[cfg(not(target_os = "linux"))]
compile_error!("nsguard supports Linux only: namespaces are a feature of the Linux kernel");

// Each module is declared with its own `cfg` (not inside a macro), so that
// rustfmt and every other tool that follows `mod` items sees all of them.

// 0. Events for the optional `tracing` feature (a macro, used everywhere),
//    and the concurrency primitives (`std`'s, or loom's under the model).
#[cfg(target_os = "linux")]
mod sync;
#[cfg(target_os = "linux")]
mod trace;

// 1. Vocabulary: kinds, ids, error numbers, errors. No system calls.
#[cfg(target_os = "linux")]
mod errno;
#[cfg(target_os = "linux")]
mod error;
#[cfg(target_os = "linux")]
mod id;
#[cfg(target_os = "linux")]
mod kind;

// 2. The kernel boundary: every system call, what the kernel offers, and
//    the fork generation.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // system calls, ioctls and fork-local publication; see its docs
mod sys;

// 3. Per-thread state, and handles to namespaces.
#[cfg(target_os = "linux")]
mod handle;
#[cfg(target_os = "linux")]
mod thread;

// 4. The process: its origin thread and home namespaces, helper threads,
//    containment of user code.
#[cfg(target_os = "linux")]
mod process;

// 5. Switching: the guard on the calling thread, the executor's workers.
#[cfg(target_os = "linux")]
mod executor;
#[cfg(target_os = "linux")]
mod guard;

// 6. Conveniences built on the above.
#[cfg(target_os = "linux")]
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub mod __private;
#[cfg(target_os = "linux")]
mod census;
#[cfg(all(target_os = "linux", feature = "tokio", feature = "tower"))]
mod connector;
#[cfg(target_os = "linux")]
mod create;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(target_os = "linux")]
mod pool;
#[cfg(all(target_os = "linux", feature = "tokio"))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod runtime;
#[cfg(target_os = "linux")]
mod sockets;
#[cfg(target_os = "linux")]
mod spawn;

#[cfg(target_os = "linux")]
pub use census::{stray_threads, StrayThread, ThreadOwner};
#[cfg(all(target_os = "linux", feature = "tokio", feature = "tower"))]
pub use connector::{BoxError, ServiceInside};
#[cfg(target_os = "linux")]
pub use create::{IdMap, Unshare};
#[cfg(target_os = "linux")]
pub use errno::Errno;
#[cfg(target_os = "linux")]
pub use error::{Error, Result, SharedError, WorkerCause};
#[cfg(target_os = "linux")]
pub use executor::{Executor, ExecutorBuilder, Retired, RunAsync, Stats};
#[cfg(target_os = "linux")]
pub use guard::NsGuard;
#[cfg(target_os = "linux")]
pub use handle::{Namespace, NsSet, SetIntoIter, SetIter, NETNS_DIRS};
#[cfg(target_os = "linux")]
pub use id::NsId;
#[cfg(target_os = "linux")]
pub use kind::{KindsIter, NsKind, NsKinds, ParseKindError};
#[cfg(target_os = "linux")]
pub use pool::{Pool, PoolBuilder};
#[cfg(target_os = "linux")]
pub use spawn::{CommandExt, Credentials};
#[cfg(target_os = "linux")]
pub use thread::{is_poisoned, poison_reason};
