//! Which threads of the process nsguard owns or has switched: its workers,
//! and threads inside a guard. The census of threads away from home tells
//! these from threads that a body or a guard's scope started and left
//! inside.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::sys::fork_local::{self, ForkLocal};

/// What nsguard uses a thread for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A worker of an executor.
    Worker,
    /// A thread inside an `NsGuard`.
    Guard,
    /// A thread of a tokio runtime nsguard runs: the runtime of a set that
    /// bodies run in, or one built to live inside a set.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Runtime,
}

/// The threads nsguard uses, by thread id (of the caller's pid namespace),
/// in this fork generation.
static OWNED: ForkLocal<Mutex<BTreeMap<i32, Role>>> = ForkLocal::new();

fn owned() -> MutexGuard<'static, BTreeMap<i32, Role>> {
    let made = OWNED.get_or_try_make(|| Ok::<_, std::convert::Infallible>(Mutex::default()));
    let Ok(owned) = made;
    owned.lock().unwrap_or_else(|p| p.into_inner())
}

/// The calling thread, counted as used by nsguard in `role` until the
/// token is dropped.
pub(crate) struct Owned {
    tid: i32,
    generation: u64,
}

impl Owned {
    /// Counts the calling thread in `role`.
    pub(crate) fn register(role: Role) -> Owned {
        let tid = nix::unistd::gettid().as_raw();
        owned().insert(tid, role);
        Owned {
            tid,
            generation: fork_local::generation(),
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if self.generation == fork_local::generation() {
            owned().remove(&self.tid);
        }
    }
}

/// What nsguard uses thread `tid` (of the caller's pid namespace) for.
pub(crate) fn role_of(tid: i32) -> Option<Role> {
    owned().get(&tid).copied()
}
