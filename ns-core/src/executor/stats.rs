//! [`Stats`]: what an executor has done, and why workers were retired.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of an [`Executor`](crate::Executor)'s workers and of what
/// they have done since it was built: see
/// [`Executor::stats`](crate::Executor::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live worker threads, busy or idle (or starting).
    pub workers: usize,
    /// Idle workers.
    pub idle_workers: usize,
    /// Calls run on a worker (nested calls run inline are not counted).
    pub calls: u64,
    /// `setns(2)` calls made by workers, to serve calls or to go home.
    pub switches: u64,
    /// Calls and tasks given to an idle worker that was parked, and was
    /// woken for them. The others found their worker still spinning for
    /// work (see [`ExecutorBuilder::spin`](crate::ExecutorBuilder::spin)),
    /// started a new one, or waited. A steady caller whose calls mostly
    /// wake a parked worker pays a wake-up (a few microseconds) on each.
    pub woken: u64,
    /// Blocking calls that found every worker busy at the cap and waited.
    pub waits_at_cap: u64,
    /// Workers started beyond the cap because callers waited at it while no
    /// call finished (see
    /// [`ExecutorBuilder::overflow_after`](crate::ExecutorBuilder::overflow_after)
    /// and [`ExecutorBuilder::max_overflow`](crate::ExecutorBuilder::max_overflow)).
    pub overflowed: u64,
    /// Workers started beyond the cap for calls made from the executor's
    /// own busy workers (a body calling `run`, an `#[in_namespace]` fn or
    /// `run_async` of the same executor), which could deadlock otherwise.
    pub nested_beyond_cap: u64,
    /// Workers sent home because the program dropped its last handle to a
    /// namespace they were in (idle ones at once, busy ones after their
    /// call).
    pub evictions: u64,
    /// Threads that bodies started inside (in a namespace of their call
    /// other than home) and left there, seen after calls that grew the
    /// process's thread count (each counted once; with the post-call check
    /// only). They stay inside for good:
    /// [`stray_threads`](crate::stray_threads) lists those still alive.
    pub threads_left_inside: u64,
    /// Workers retired (never reused), by reason.
    pub retired: Retired,
}

/// Workers retired, by reason: see [`Stats::retired`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retired {
    /// It could not switch to what a call asked for (the call failed).
    pub switch_failed: u64,
    /// A body left it in other namespaces (it called `setns` or `unshare`).
    pub namespaces_changed: u64,
    /// A body changed its credentials, capabilities, securebits,
    /// `no_new_privs`, seccomp filters or fs context.
    pub thread_state_changed: u64,
    /// A body left a guard alive on it, or poisoned it.
    pub guard_or_poison: u64,
    /// It could not return home (it had entered a mount namespace, or a
    /// namespace it cannot come back from) when it had to.
    pub cannot_go_home: u64,
}

/// Why a worker was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retirement {
    SwitchFailed,
    NamespacesChanged,
    ThreadStateChanged,
    GuardOrPoison,
    CannotGoHome,
}

impl Retirement {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Retirement::SwitchFailed => "it could not switch for a call",
            Retirement::NamespacesChanged => "a body left it in other namespaces",
            Retirement::ThreadStateChanged => {
                "a body changed its credentials, capabilities, securebits, no_new_privs, \
                 seccomp filters or fs context"
            }
            Retirement::GuardOrPoison => "a body left a guard on it, or poisoned it",
            Retirement::CannotGoHome => "it could not return home",
        }
    }
}

/// The counters behind [`Stats`], updated with relaxed atomics.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) switches: AtomicU64,
    pub(crate) woken: AtomicU64,
    pub(crate) waits_at_cap: AtomicU64,
    pub(crate) nested_beyond_cap: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) threads_left_inside: AtomicU64,
    retired: [AtomicU64; 5],
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn retire(&self, why: Retirement) {
        Counters::add(&self.retired[why as usize], 1);
    }

    pub(crate) fn snapshot(&self, workers: usize, idle_workers: usize, overflowed: u64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let r = |why: Retirement| get(&self.retired[why as usize]);
        Stats {
            workers,
            idle_workers,
            calls: get(&self.calls),
            switches: get(&self.switches),
            woken: get(&self.woken),
            waits_at_cap: get(&self.waits_at_cap),
            overflowed,
            nested_beyond_cap: get(&self.nested_beyond_cap),
            evictions: get(&self.evictions),
            threads_left_inside: get(&self.threads_left_inside),
            retired: Retired {
                switch_failed: r(Retirement::SwitchFailed),
                namespaces_changed: r(Retirement::NamespacesChanged),
                thread_state_changed: r(Retirement::ThreadStateChanged),
                guard_or_poison: r(Retirement::GuardOrPoison),
                cannot_go_home: r(Retirement::CannotGoHome),
            },
        }
    }
}
