//! The concurrency primitives of the executor: `std`'s, or under
//! `RUSTFLAGS="--cfg loom"` those of the [loom](https://docs.rs/loom)
//! model checker, which runs the executor's handoff and books through
//! every interleaving of their threads (the models are in
//! `executor/models/`).
//!
//! The executor takes its mutexes, condvars, atomics, parking, spinning
//! and clock from here; in a normal build every name is `std`'s own.
//! `Arc` stays `std`'s everywhere: the registry of executors keeps `Weak`s,
//! which loom's `Arc` lacks, and no model checks a reference count. The
//! statistics counters stay `std` atomics too: nothing synchronizes on
//! them.
//!
//! Under loom, the condvar is this module's own (on loom's mutex and
//! `Notify`): loom's `Condvar` waits on the thread's park token, so a spare
//! token (which `handoff::wait` gives back on purpose) ends a wait at once
//! and leaves the thread among the waiters, where a later `notify_one` is
//! spent on it: a lost wakeup that `std`'s condvar does not have.
//!
//! Under loom, time is a logical clock: every [`time::Instant::now`]
//! advances it by one microsecond, so that a spin budget or a timeout ends
//! after a number of looks that does not depend on the machine, as loom's
//! replays need.

#[cfg(not(loom))]
pub(crate) use std::sync::{atomic, Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic;
#[cfg(loom)]
pub(crate) use model_condvar::{Condvar, Mutex, MutexGuard};

/// How many times a spinning thread looks at what it waits for between
/// two looks at the clock.
#[cfg(not(loom))]
pub(crate) const SPINS_PER_LOOK: u32 = 64;
/// Under loom every spin is a step of the model: a few are enough.
#[cfg(loom)]
pub(crate) const SPINS_PER_LOOK: u32 = 2;

/// Threads: the current one, parking, yielding.
pub(crate) mod thread {
    #[cfg(not(loom))]
    pub(crate) use std::thread::{park, yield_now, Thread};

    /// The calling thread's handle, kept in a thread-local of this crate's
    /// own: read in line, where `std::thread::current` is a function on a
    /// page of `std`'s, one more page for a call after an idle gap to miss
    /// (README, "Code pages"). While the thread-locals are being torn down
    /// at thread exit, `std`'s.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn current() -> Thread {
        std::thread_local! {
            static CURRENT: Thread = std::thread::current();
        }
        CURRENT
            .try_with(Thread::clone)
            .unwrap_or_else(|_| std::thread::current())
    }

    #[cfg(loom)]
    pub(crate) use loom::thread::{current, park, spawn, yield_now, Thread};
}

/// `spin_loop`: a hint to the CPU, or a yield to the model's other threads.
pub(crate) mod hint {
    #[cfg(not(loom))]
    pub(crate) use std::hint::spin_loop;

    #[cfg(loom)]
    pub(crate) use loom::hint::spin_loop;
}

/// The clock of timeouts and spin budgets.
pub(crate) mod time {
    #[cfg(not(loom))]
    pub(crate) use std::time::Instant;

    #[cfg(loom)]
    pub(crate) use logical::Instant;

    /// A clock that moves only when it is read: one microsecond per
    /// [`Instant::now`], kept per model execution.
    #[cfg(loom)]
    mod logical {
        use std::ops::{Add, Sub};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::Duration;

        loom::lazy_static! {
            // A std atomic: reading the clock is not a step of the model
            // (loom runs one thread at a time).
            static ref CLOCK: AtomicU64 = AtomicU64::new(0);
        }

        /// A point on the logical clock, in nanoseconds.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        pub(crate) struct Instant(u64);

        impl Instant {
            pub(crate) fn now() -> Instant {
                Instant(CLOCK.fetch_add(1_000, Ordering::Relaxed) + 1_000)
            }

            pub(crate) fn elapsed(&self) -> Duration {
                Instant::now().duration_since(*self)
            }

            pub(crate) fn duration_since(&self, earlier: Instant) -> Duration {
                Duration::from_nanos(self.0.saturating_sub(earlier.0))
            }

            pub(crate) fn checked_add(&self, d: Duration) -> Option<Instant> {
                let nanos = u64::try_from(d.as_nanos()).ok()?;
                self.0.checked_add(nanos).map(Instant)
            }
        }

        impl Add<Duration> for Instant {
            type Output = Instant;

            fn add(self, d: Duration) -> Instant {
                self.checked_add(d).unwrap_or(Instant(u64::MAX))
            }
        }

        impl Sub for Instant {
            type Output = Duration;

            fn sub(self, earlier: Instant) -> Duration {
                self.duration_since(earlier)
            }
        }
    }
}

/// A condvar for the models that, like `std`'s, ignores park tokens; with
/// the mutex it needs (its guard knows its mutex, to lock it again).
#[cfg(loom)]
mod model_condvar {
    use std::collections::VecDeque;
    use std::ops::{Deref, DerefMut};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, LockResult, PoisonError};
    use std::time::Duration;

    /// `std::sync::Mutex`, on loom's.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T> {
        inner: loom::sync::Mutex<T>,
    }

    /// `std::sync::MutexGuard`, on loom's.
    pub(crate) struct MutexGuard<'a, T> {
        mutex: &'a Mutex<T>,
        inner: loom::sync::MutexGuard<'a, T>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex {
                inner: loom::sync::Mutex::new(value),
            }
        }

        pub(crate) fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
            let wrap = |inner| MutexGuard { mutex: self, inner };
            match self.inner.lock() {
                Ok(inner) => Ok(wrap(inner)),
                Err(poisoned) => Err(PoisonError::new(wrap(poisoned.into_inner()))),
            }
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            &self.inner
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.inner
        }
    }

    /// One waiting thread: woken through its own `Notify`, once `notified`.
    struct Waiter {
        wake: loom::sync::Notify,
        notified: AtomicBool,
    }

    /// `std::sync::Condvar`; its timeouts never fire (as loom's).
    #[derive(Default)]
    pub(crate) struct Condvar {
        // A std mutex: loom runs one thread at a time, and nothing blocks
        // while it is held.
        waiters: std::sync::Mutex<VecDeque<Arc<Waiter>>>,
    }

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar::default()
        }

        fn waiters(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Waiter>>> {
            self.waiters.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub(crate) fn wait<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
        ) -> LockResult<MutexGuard<'a, T>> {
            let waiter = Arc::new(Waiter {
                wake: loom::sync::Notify::new(),
                notified: AtomicBool::new(false),
            });
            // Registered before the mutex is released: no notification
            // made after that is missed.
            self.waiters().push_back(Arc::clone(&waiter));
            let mutex = guard.mutex;
            drop(guard);
            // `Notify` may wake spuriously (loom explores it): wait on.
            while !waiter.notified.load(Ordering::Relaxed) {
                waiter.wake.wait();
            }
            mutex.lock()
        }

        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _timeout: Duration,
        ) -> LockResult<(MutexGuard<'a, T>, bool)> {
            match self.wait(guard) {
                Ok(guard) => Ok((guard, false)),
                Err(poisoned) => Err(PoisonError::new((poisoned.into_inner(), false))),
            }
        }

        pub(crate) fn notify_one(&self) {
            let first = self.waiters().pop_front();
            if let Some(waiter) = first {
                waiter.notified.store(true, Ordering::Relaxed);
                waiter.wake.notify();
            }
        }

        pub(crate) fn notify_all(&self) {
            let all = std::mem::take(&mut *self.waiters());
            for waiter in all {
                waiter.notified.store(true, Ordering::Relaxed);
                waiter.wake.notify();
            }
        }
    }
}
