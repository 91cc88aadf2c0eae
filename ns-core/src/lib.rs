//! The runtime of [nsguard](https://docs.rs/nsguard): namespace handles,
//! sets of them, the thread guard, and the kernel rules of each kind.
//!
//! Depend on `nsguard`, which re-exports this crate; its documentation is
//! the place to start.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// Namespaces are a Linux kernel feature: elsewhere, one clear error instead
// of dozens of unresolved names (the Linux-only dependencies are absent).
#[cfg(not(target_os = "linux"))]
compile_error!("nsguard supports Linux only: namespaces are a feature of the Linux kernel");

/// Keeps the items it wraps on Linux only.
macro_rules! linux_only {
    ($($item:item)*) => { $( #[cfg(target_os = "linux")] $item )* };
}

linux_only! {
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub mod __private;
// First: the order of modules is the order of `NsSet`'s impl blocks in the
// docs, which should open with the basics (making a set, reading it,
// running in it), then creating (create), async (executor), sockets.
mod set;
mod create;
mod errno;
mod error;
mod executor;
mod guard;
mod id;
mod kind;
mod live;
mod namespace;
pub mod netns;
mod pool;
mod probe;
mod reach;
mod sockets;
mod spawn;
mod sys;
mod thread_state;
mod threads;
mod trace;

pub use create::{IdMap, Unshare};
pub use errno::Errno;
pub use error::{Error, Result, SharedError};
pub use executor::{ExecutorBuilder, Executor, Retired, RunAsync, Stats};
pub use guard::NsGuard;
pub use id::NsId;
pub use kind::{KindsIter, NsKind, NsKinds};
pub use namespace::{Namespace, NETNS_DIRS};
pub use pool::{Pool, PoolBuilder};
pub use set::{NsSet, SetIntoIter, SetIter};
pub use spawn::{CommandExt, Credentials};
pub use thread_state::{is_poisoned, poison_reason};
}
