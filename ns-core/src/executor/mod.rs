//! [`Executor`]: pinned worker threads that run code inside namespaces.

mod contain;
mod facts;
mod future;
mod handoff;
pub(crate) mod origin;
mod pool;
mod stats;
pub(crate) mod target;
mod task;
mod worker;

use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kind::NsKind;
use crate::set::NsSet;
use crate::thread_state;

pub use future::RunAsync;
pub(crate) use future::RunFuture;
pub(crate) use pool::{on_last_handle_dropped, wait_until_left};
pub use stats::{Retired, Stats};
pub(crate) use target::Target;

use pool::{Config, Shared};

/// A pool of worker threads that run closures inside namespaces, so that
/// the caller's thread is never switched.
///
/// Each worker is an OS thread owned by the executor and remembers which
/// namespaces it is in. A call goes to an idle worker already in the target
/// namespaces (no `setns` at all); else to an idle worker that switches
/// straight there (one `setns` per kind that differs); else to a new worker,
/// up to [`max_workers`](ExecutorBuilder::max_workers); else it waits. Workers idle
/// for [`idle_timeout`](ExecutorBuilder::idle_timeout) exit. Handing a call over
/// spins for a short while before parking, which keeps a warm call in the
/// sub-microsecond range; an idle executor uses no CPU.
///
/// Kinds that a call's set does not name are those of the executor's *home*:
/// the namespaces of the thread that built it ([`ExecutorBuilder::home`] to choose),
/// or for the [global](Executor::global) executor, those of the process's
/// main thread.
///
/// After every call the worker checks that the call left it exactly where
/// it was (the body may have called `setns` or `unshare` itself, leaked an
/// [`NsGuard`](crate::NsGuard), poisoned the thread, or changed the
/// thread's capabilities); a worker that fails the check, or fails to
/// switch for a call, is retired, never reused.
///
/// A worker that enters a mount namespace first gives itself a private root
/// and working directory (`unshare(CLONE_FS)`), which cannot be undone: it
/// serves that mount namespace only until it exits.
///
/// Cloning an `Executor` gives another handle to the same pool; the pool
/// shuts down when the last handle is dropped (busy workers finish first).
///
/// # Examples
///
/// ```
/// use nsguard::{Executor, Namespace, NsKind, NsSet};
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// let executor = Executor::builder().max_workers(2).build()?;
/// let sandbox = NsSet::unshare(NsKind::Net)?;
/// let here = Namespace::current(NsKind::Net)?;
/// // On a worker inside `sandbox`: it sees the sandbox's network namespace.
/// let seen = executor.run(&sandbox, || Namespace::current(NsKind::Net).map(|ns| ns.id()))??;
/// assert_eq!(Some(seen), sandbox.get(NsKind::Net).map(Namespace::id));
/// // The calling thread never moved.
/// assert_eq!(Namespace::current(NsKind::Net)?, here);
/// assert_eq!(executor.stats().calls, 1);
/// # Ok::<(), nsguard::Error>(())
/// ```
#[derive(Clone)]
pub struct Executor {
    handle: Arc<Handle>,
}

/// Shuts the pool down when the last [`Executor`] handle goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // In a forked child the workers are the parent's: nothing to shut
        // down here, and the pool's lock may have been held at the fork.
        if self.shared.is_in_this_process() {
            self.shared.shutdown();
        }
    }
}

/// Builds an [`Executor`] with its own settings: see [`Executor::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nsguard::{Executor, NsKind, NsSet};
///
/// let executor = Executor::builder()
///     .max_workers(4)
///     .idle_timeout(Duration::from_secs(30))
///     .spin(Duration::ZERO) // park at once: saves CPU, costs latency
///     .check_after_call(true)
///     .home(NsSet::current(NsKind::Net | NsKind::Uts)?)
///     .build()?;
/// assert_eq!(executor.workers(), 0); // workers start on the first calls
/// executor.run(&NsSet::new(), || ())?;
/// assert_eq!(executor.workers(), 1);
/// # Ok::<(), nsguard::Error>(())
/// ```
#[derive(Debug)]
pub struct ExecutorBuilder {
    config: Config,
    home: Option<NsSet>,
}

impl Default for ExecutorBuilder {
    fn default() -> ExecutorBuilder {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        ExecutorBuilder {
            config: Config {
                max_workers: (4 * cores).max(8),
                idle_timeout: Duration::from_secs(10),
                spin: Duration::from_micros(20),
                check_after_call: true,
                overflow_after: Duration::from_secs(1),
            },
            home: None,
        }
    }
}

/// The longest spin budget [`ExecutorBuilder::spin`] accepts.
const MAX_SPIN: Duration = Duration::from_secs(1);

impl ExecutorBuilder {
    /// The most worker threads the executor keeps (default: 4 per core, at
    /// least 8); zero is refused by [`build`](Self::build).
    ///
    /// Calls beyond it wait for a worker, with two exceptions that keep
    /// waiting from turning into a deadlock:
    ///
    /// - a blocking call made from one of this executor's own workers (a
    ///   body calling another `run` or `#[in_namespace]` function) may start
    ///   a worker beyond the cap: its worker waits for it;
    /// - a blocking call that has waited at the cap for
    ///   [`overflow_after`](Self::overflow_after) while no call of the
    ///   executor finished starts a worker beyond the cap: the busy workers
    ///   may be waiting for it (a body that waits for a thread of its own,
    ///   `std::thread::scope` or a rayon pool, that calls into the same
    ///   executor).
    ///
    /// [`run_async`](Executor::run_async) calls never exceed the cap: they
    /// wait in a queue without blocking anyone.
    #[must_use]
    pub fn max_workers(mut self, n: usize) -> ExecutorBuilder {
        self.config.max_workers = n;
        self
    }

    /// How long an idle worker waits for a call before it exits
    /// (default: 10 s). [`Duration::MAX`] (or any duration too large to
    /// add to the current time) means never.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> ExecutorBuilder {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long a caller waiting at the cap, with no call of the executor
    /// finishing meanwhile, waits before a worker beyond the cap is started
    /// for it (default: 1 s). See [`max_workers`](Self::max_workers).
    /// [`Duration::MAX`] turns this off: calls that wait for each other
    /// through threads of their own then deadlock at the cap.
    #[must_use]
    pub fn overflow_after(mut self, wait: Duration) -> ExecutorBuilder {
        self.config.overflow_after = wait;
        self
    }

    /// How long a caller waiting for its result, and a worker waiting for
    /// its next call, spin before they park (default: 20 µs; at most 1 s,
    /// see [`build`](Self::build)). Spinning turns a ~50 µs wake-up into a
    /// sub-microsecond handoff; zero parks at once and saves CPU.
    #[must_use]
    pub fn spin(mut self, budget: Duration) -> ExecutorBuilder {
        self.config.spin = budget;
        self
    }

    /// Whether a worker checks, after every call, that the body left its
    /// thread exactly as it found it (default: true): its namespaces, its
    /// credentials (uids, gids, supplementary groups), its capabilities
    /// (effective, permitted, inheritable, bounding and ambient sets), its
    /// securebits, `no_new_privs` and seccomp filters, and its filesystem
    /// context (still shared with the process; or, for a worker that
    /// entered a mount namespace, its own root, cwd and umask).
    ///
    /// The check is exact: it reads the worker's id of every kind a thread
    /// can change (7 `readlinkat`s on `/proc/thread-self/ns`) and its
    /// `/proc/thread-self/status`, after the result was handed back, so it
    /// costs the caller no latency, but it costs CPU: tens of microseconds
    /// per call, far more than the rest of a warm call (~0.4 µs), which
    /// bounds the calls per second one executor can serve on few cores.
    /// `cargo bench -p nsguard-suite --bench compare` measures each part.
    ///
    /// Turn it off only when no body changes its thread's state itself
    /// (`setns(2)`, `unshare(2)`, `capset(2)`, `setresuid(2)` as a raw
    /// system call, `prctl(2)`, `seccomp(2)`, directly or through a
    /// library). Leaked guards and poisoned threads are still caught, since
    /// that costs nothing; but a worker whose body changed its state would
    /// then serve later calls that way.
    #[must_use]
    pub fn check_after_call(mut self, check: bool) -> ExecutorBuilder {
        self.config.check_after_call = check;
        self
    }

    /// The namespaces workers return to for kinds a call does not name
    /// (default: those of the thread that calls [`build`](Self::build), of
    /// the kinds a thread can switch: net, uts, ipc, cgroup; its pid,
    /// mount, time and user namespaces must be the process's own).
    ///
    /// A home can only name namespaces a worker can switch to and from:
    /// net, uts, ipc and cgroup; mnt, pid, time and user only if they are
    /// the process's own (no switch needed). See [`build`](Self::build).
    #[must_use]
    pub fn home(mut self, home: NsSet) -> ExecutorBuilder {
        self.home = Some(home);
        self
    }

    /// Starts the executor. Workers start on the first calls.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidConfig`] for `max_workers(0)`, a spin budget over
    ///   1 s, or a home with a pid, mnt, time or user namespace other than
    ///   the process's own: a worker in another pid namespace could not
    ///   start threads, and the others cannot be left again by a thread;
    /// - [`Error::Poisoned`] if the calling thread is poisoned and no home
    ///   was given;
    /// - errors opening the home namespaces, and [`Error::Thread`] or
    ///   [`Error::Worker`] if nsguard's origin thread cannot start (see
    ///   [`Executor::global`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Error, Executor};
    ///
    /// let err = Executor::builder().max_workers(0).build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidConfig { setting: "max_workers", .. }));
    /// ```
    pub fn build(self) -> Result<Executor> {
        let config = self.config;
        if config.max_workers == 0 {
            return Err(Error::InvalidConfig {
                setting: "max_workers",
                reason: "an executor needs at least one worker".into(),
            });
        }
        if config.spin > MAX_SPIN {
            return Err(Error::InvalidConfig {
                setting: "spin",
                reason: format!(
                    "{:?} is longer than {MAX_SPIN:?}: spinning pays off only up to the cost of \
                     a wake-up (~50 µs); beyond that it burns a core",
                    config.spin
                ),
            });
        }
        let origin = origin::get()?;
        let home = match self.home {
            Some(home) => home,
            None => NsSet::current(origin::HOME_KINDS)?,
        };
        let mut kept = NsSet::new();
        for ns in home {
            let kind = ns.kind();
            if kind.is_thread_switchable() && kind != NsKind::Pid {
                kept.insert(ns);
                continue;
            }
            // Other kinds are accepted only where no switch is needed.
            let own = match kind {
                NsKind::User => crate::reach::own_user_ns()?.ino(),
                _ => origin.profile.get(kind),
            };
            if ns.id().ino() != own {
                let why = match kind {
                    NsKind::Pid => {
                        "a thread whose pid namespace for children differs from its own cannot \
                         create threads (clone fails with EINVAL), so workers could not be \
                         started there, nor start threads themselves; name the pid namespace \
                         in each call's set instead, or spawn a process into it"
                    }
                    NsKind::Mnt => {
                        "a worker cannot return from another mount namespace; name it in each \
                         call's set instead (its workers are then dedicated to it)"
                    }
                    _ => {
                        "no thread of a multithreaded process can enter another time or user \
                         namespace; spawn a process into it with CommandExt::spawn_in"
                    }
                };
                return Err(Error::InvalidConfig {
                    setting: "home",
                    reason: format!(
                        "{} is not the process's own {kind} namespace: {why}",
                        ns.id()
                    ),
                });
            }
        }
        let shared = Shared::new(config, kept, origin)?;
        Ok(Executor {
            handle: Arc::new(Handle { shared }),
        })
    }
}

impl Executor {
    /// A builder for an executor with its own settings.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let executor = nsguard::Executor::builder()
    ///     .max_workers(4)
    ///     .idle_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// The process-wide executor that [`NsSet::run`] and `#[in_namespace]`
    /// use, started on first use with the default settings.
    ///
    /// Its home is the process's own namespaces, whatever the state of the
    /// thread that first uses it: nsguard's threads are all started by one
    /// *origin* thread per process, started by the first nsguard call that
    /// can need workers or switch a thread ([`NsSet::enter`],
    /// [`ExecutorBuilder::build`], this function). The origin settles in the main
    /// thread's namespaces (nothing is switched by nsguard before it
    /// exists), and checks that it shares the process's root and cwd and
    /// has the main thread's credentials and capabilities. So workers never
    /// inherit a caller's namespaces, root, cwd or capabilities.
    ///
    /// After `fork(2)`, the child's first use starts a new global executor
    /// (the parent's threads do not exist in the child).
    ///
    /// # Errors
    ///
    /// On the first call (and in a forked child): [`Error::Thread`] if the
    /// origin thread cannot start; [`Error::Worker`] if the calling thread
    /// is not a place to start it from (it is inside a guard, has a root or
    /// cwd of its own, or lacks the main thread's capabilities), which a
    /// later call from another thread may not be.
    pub fn global() -> Result<&'static Executor> {
        /// Published executors are never freed (`&'static`); one made
        /// before a fork is left to the parent.
        static GLOBAL: AtomicPtr<Executor> = AtomicPtr::new(ptr::null_mut());
        loop {
            let current = GLOBAL.load(Ordering::Acquire);
            // SAFETY: non-null pointers in GLOBAL come from `Box::into_raw`
            // below and are never freed once published.
            if let Some(executor) = unsafe { current.as_ref() } {
                if executor.handle.shared.is_in_this_process() {
                    return Ok(executor);
                }
            }
            let origin = origin::get()?;
            let fresh = Executor::builder().home(origin.home.try_clone()?).build()?;
            let fresh = Box::into_raw(Box::new(fresh));
            match GLOBAL.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
                // SAFETY: just published, never freed (see above).
                Ok(_) => return Ok(unsafe { &*fresh }),
                // SAFETY: `fresh` came from `Box::into_raw` above and was
                // never shared; dropping it shuts its (unused) pool down.
                Err(_) => drop(unsafe { Box::from_raw(fresh) }),
            }
        }
    }

    /// Runs `f` on a worker inside the namespaces of `set`, and returns its
    /// value. See [`NsSet::run`].
    ///
    /// # Errors
    ///
    /// See [`NsSet::run`].
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic is re-raised here with its payload.
    pub fn run<R, F>(&self, set: &NsSet, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        self.run_target(&set.target(), f)
    }

    pub(crate) fn run_target<'a, R, F>(&self, target: &Target<'a>, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'a,
        R: Send + 'a,
    {
        thread_state::check()?;
        let shared = &self.handle.shared;
        shared.check_usable()?;
        shared.check_runnable(target)?;
        let desired = shared.home_profile.overlaid(target);
        // A body calling for the namespaces its worker is in runs inline.
        if worker::is_worker_of(shared)
            && thread_state::depth() == 0
            && desired.matches_current_thread()?
        {
            return Ok(f());
        }
        let outcome = handoff::call(target, desired, f, shared.config.spin, |task| {
            shared.dispatch(task);
        })?;
        match outcome {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The number of live worker threads, busy or idle.
    pub fn workers(&self) -> usize {
        self.handle.shared.counts().0
    }

    /// The number of idle worker threads.
    pub fn idle_workers(&self) -> usize {
        self.handle.shared.counts().1
    }

    /// A snapshot of the executor's workers and of what they have done:
    /// calls, switches, waits at the cap, evictions, and workers retired by
    /// reason.
    ///
    /// ```
    /// let executor = nsguard::Executor::builder().build()?;
    /// executor.run(&nsguard::NsSet::new(), || ())?;
    /// let stats = executor.stats();
    /// assert_eq!(stats.calls, 1);
    /// assert_eq!(stats.retired, nsguard::Retired::default());
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.handle.shared.stats()
    }

    /// How many workers were started beyond
    /// [`max_workers`](ExecutorBuilder::max_workers) because callers waited at the
    /// cap while no call finished (see [`ExecutorBuilder::overflow_after`]).
    pub fn overflowed_workers(&self) -> u64 {
        self.handle.shared.counts().2
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (workers, idle, _) = self.handle.shared.counts();
        f.debug_struct("Executor")
            .field("workers", &workers)
            .field("idle", &idle)
            .field("config", &self.handle.shared.config)
            .finish()
    }
}
