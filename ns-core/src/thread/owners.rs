//! Which threads of the process nsguard owns or has switched: its workers,
//! and threads inside a guard. The census of threads away from home tells
//! these from threads that a body or a guard's scope started and left
//! inside.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// What nsguard uses one thread for.
enum Entry {
    /// For as long as it is registered.
    Fixed(Role),
    /// A thread that has entered guards: inside one while the flag is set.
    /// Registered once per thread, so that entering a guard costs an
    /// atomic store, not this table's lock.
    Guards(Arc<AtomicBool>),
}

/// The threads nsguard uses, by thread id (of the caller's pid namespace),
/// in this fork generation.
static OWNED: ForkLocal<Mutex<BTreeMap<i32, Entry>>> = ForkLocal::new();

fn owned() -> MutexGuard<'static, BTreeMap<i32, Entry>> {
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
        owned().insert(tid, Entry::Fixed(role));
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
    match owned().get(&tid)? {
        Entry::Fixed(role) => Some(*role),
        Entry::Guards(inside) => inside.load(Ordering::Acquire).then_some(Role::Guard),
    }
}

/// The calling thread's entry among threads that enter guards.
struct GuardEntry {
    tid: i32,
    generation: u64,
    inside: Arc<AtomicBool>,
}

impl Drop for GuardEntry {
    /// The thread exits (or forgets an entry of its parent's fork
    /// generation).
    fn drop(&mut self) {
        if self.generation == fork_local::generation() {
            owned().remove(&self.tid);
        }
    }
}

std::thread_local! {
    static GUARD_ENTRY: RefCell<Option<GuardEntry>> = const { RefCell::new(None) };
}

/// The calling thread counted as inside a guard until this is dropped (for
/// the outermost guard; the thread itself must drop it).
pub(crate) struct InGuard(());

impl InGuard {
    pub(crate) fn mark() -> InGuard {
        GUARD_ENTRY.with(|entry| {
            let mut entry = entry.borrow_mut();
            let generation = fork_local::generation();
            let current = entry
                .as_ref()
                .filter(|e| e.generation == generation)
                .map(|e| Arc::clone(&e.inside));
            let inside = current.unwrap_or_else(|| {
                let tid = nix::unistd::gettid().as_raw();
                let inside = Arc::new(AtomicBool::new(false));
                owned().insert(tid, Entry::Guards(Arc::clone(&inside)));
                *entry = Some(GuardEntry {
                    tid,
                    generation,
                    inside: Arc::clone(&inside),
                });
                inside
            });
            inside.store(true, Ordering::Release);
        });
        InGuard(())
    }
}

impl Drop for InGuard {
    fn drop(&mut self) {
        let _ = GUARD_ENTRY.try_with(|entry| {
            if let Some(entry) = entry.borrow().as_ref() {
                entry.inside.store(false, Ordering::Release);
            }
        });
    }
}

#[cfg(feature = "tokio")]
std::thread_local! {
    static RUNTIME_THREAD: RefCell<Option<Owned>> = const { RefCell::new(None) };
}

/// Counts the calling thread, a thread of a tokio runtime nsguard runs, as
/// nsguard's until [`disown_runtime_thread`]: for the runtime's start and
/// stop hooks, which tokio calls on the thread itself.
#[cfg(feature = "tokio")]
pub(crate) fn own_runtime_thread() {
    RUNTIME_THREAD.with(|owned| *owned.borrow_mut() = Some(Owned::register(Role::Runtime)));
}

/// Ends what [`own_runtime_thread`] began.
#[cfg(feature = "tokio")]
pub(crate) fn disown_runtime_thread() {
    let _ = RUNTIME_THREAD.try_with(|owned| drop(owned.borrow_mut().take()));
}
