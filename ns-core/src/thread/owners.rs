//! Which threads of the process nsguard owns or has switched: its workers,
//! and threads inside a guard. The census of threads away from home tells
//! these from threads that a body or a guard's scope started and left
//! inside.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sys::fork_local::{self, ForkLocal};
use crate::thread::census::{self, Departures};

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
    /// A thread whose use has ended while the thread lives on: a worker
    /// retired inside a namespace, say, is still there until its thread is
    /// gone, and still runs user code on its way out (the destructors of
    /// its thread locals). Known by when it started (see
    /// [`census::Stat::start`]), so that a later thread given the same id
    /// is not taken for it; dropped once it is gone.
    Leaving { role: Role, start: u64 },
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
/// token is dropped, and then until the thread is gone.
pub(crate) struct Owned {
    tid: i32,
    role: Role,
    /// When the thread started, if `/proc` showed it.
    start: Option<u64>,
    generation: u64,
}

impl Owned {
    /// Counts the calling thread in `role`.
    pub(crate) fn register(role: Role) -> Owned {
        let tid = nix::unistd::gettid().as_raw();
        // Read now: a worker registers at home, and may end inside a mount
        // namespace whose `/proc` does not show it.
        let start = census::own_start();
        forget_departed();
        owned().insert(tid, Entry::Fixed(role));
        Owned {
            tid,
            role,
            start,
            generation: fork_local::generation(),
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if self.generation == fork_local::generation() {
            leave(self.tid, self.role, self.start);
        }
    }
}

/// How many threads may have left before one that leaves looks for those
/// that are gone (others look when they begin to be used).
const LEAVING: usize = 64;

/// Thread `tid`, the calling thread, stops being used for `role`: it stays
/// nsguard's until it is gone if `start` tells it from later threads, and
/// is forgotten at once otherwise.
fn leave(tid: i32, role: Role, start: Option<u64>) {
    let many = {
        let mut owned = owned();
        match start {
            Some(start) => owned.insert(tid, Entry::Leaving { role, start }),
            None => owned.remove(&tid),
        };
        let leaving = owned
            .values()
            .filter(|e| matches!(e, Entry::Leaving { .. }))
            .count();
        leaving >= LEAVING
    };
    if many {
        forget_departed();
    }
}

/// Forgets the leaving threads that are gone, where `/proc` shows which.
/// Called as a thread begins to be used (a worker starts, a thread enters
/// its first guard), and by a thread that leaves after [`LEAVING`] others:
/// the table holds the living and a bounded number of the gone, and
/// threads that leave together (the workers of an executor that idle out)
/// do not each read every other's `/proc` entry.
fn forget_departed() {
    let leaving: Vec<(i32, u64)> = owned()
        .iter()
        .filter_map(|(&tid, entry)| match *entry {
            Entry::Leaving { start, .. } => Some((tid, start)),
            _ => None,
        })
        .collect();
    if leaving.is_empty() {
        return;
    }
    let Some(departures) = Departures::here() else {
        return;
    };
    let gone: Vec<_> = leaving
        .into_iter()
        .filter(|&(tid, start)| departures.is_gone(tid, start) == Some(true))
        .collect();
    let mut owned = owned();
    for (tid, start) in gone {
        if matches!(owned.get(&tid), Some(Entry::Leaving { start: s, .. }) if *s == start) {
            owned.remove(&tid);
        }
    }
}

/// What nsguard uses thread `tid` (of the caller's pid namespace), started
/// at `start`, for.
pub(crate) fn role_of(tid: i32, start: u64) -> Option<Role> {
    match *owned().get(&tid)? {
        Entry::Fixed(role) => Some(role),
        Entry::Guards(ref inside) => inside.load(Ordering::Acquire).then_some(Role::Guard),
        Entry::Leaving { role, start: s } => (s == start).then_some(role),
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
    /// generation). A thread that exits inside a guard (one it leaked) is
    /// still inside until it is gone.
    fn drop(&mut self) {
        if self.generation == fork_local::generation() {
            let start = self
                .inside
                .load(Ordering::Acquire)
                .then(census::own_start)
                .flatten();
            leave(self.tid, Role::Guard, start);
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
                forget_departed();
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

/// The table of owned threads on real threads (it reads `/proc`).
#[cfg(test)]
mod tests {
    use super::*;

    fn tid() -> i32 {
        nix::unistd::gettid().as_raw()
    }

    /// A thread that has left is nsguard's until it is gone; then the next
    /// thread to come or go forgets it.
    #[test]
    fn threads_that_are_gone_are_forgotten_as_others_come_and_go() {
        let (left_tx, left) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (start_tx, start) = std::sync::mpsc::channel();
        let leaving = std::thread::spawn(move || {
            drop(Owned::register(Role::Worker));
            start_tx.send(census::own_start()).unwrap();
            left_tx.send(tid()).unwrap();
            let _ = wait.recv();
        });
        let leaving_tid = left.recv().unwrap();
        let leaving_start = start.recv().unwrap().expect("/proc shows the thread");
        assert_eq!(
            role_of(leaving_tid, leaving_start),
            Some(Role::Worker),
            "left, but alive"
        );
        assert_eq!(role_of(leaving_tid, leaving_start + 1), None);
        drop(go);
        leaving.join().unwrap();

        // Many threads come and go; each is forgotten once gone.
        let gone: Vec<i32> = (0..20)
            .map(|_| {
                std::thread::spawn(|| {
                    drop(Owned::register(Role::Runtime));
                    tid()
                })
                .join()
                .unwrap()
            })
            .collect();
        drop(Owned::register(Role::Worker));
        let owned = owned();
        for tid in std::iter::once(leaving_tid).chain(gone) {
            assert!(
                !owned.contains_key(&tid),
                "thread {tid} is gone, not forgotten"
            );
        }
    }

    /// Threads that leave while none begins to be used (the workers of an
    /// executor that idle out together) still do not pile up: the one that
    /// finds [`LEAVING`] others leaving forgets those that are gone.
    #[test]
    fn threads_that_leave_together_forget_the_gone_every_so_many() {
        let gone: Vec<(i32, u64)> = (0..2 * LEAVING)
            .map(|_| {
                std::thread::spawn(|| (tid(), census::own_start().expect("/proc shows the thread")))
                    .join()
                    .unwrap()
            })
            .collect();
        // Joined, so exiting at least: gone as `Departures` sees it.
        for &(tid, start) in &gone {
            leave(tid, Role::Worker, Some(start));
        }
        let owned = owned();
        let listed = gone
            .iter()
            .filter(|(tid, _)| owned.contains_key(tid))
            .count();
        assert!(
            listed < LEAVING,
            "{listed} of {} gone threads that left are still listed",
            gone.len()
        );
    }
}
