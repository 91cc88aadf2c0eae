//! [`ExecutorBuilder`]: an executor with its own settings.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::executor::config::Config;
use crate::executor::handle::Executor;
use crate::executor::registry;
use crate::executor::scheduler::Scheduler;
use crate::executor::worker;
use crate::handle::reentry::own_user_ns;
use crate::handle::set::NsSet;
use crate::kind::NsKind;
use crate::process::origin::{self, HOME_KINDS};

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
    /// `max_overflow` if set; else it follows `max_workers`.
    max_overflow: Option<usize>,
    home: Option<NsSet>,
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
                max_overflow: 0,
            },
            max_overflow: None,
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
    ///   body calling another `run` or `#[in_namespace]` function) may
    ///   start a worker beyond the cap: its worker waits for it, so it lends
    ///   it its place (unless a worker has just run a call and is checking
    ///   itself: it waits for that one, which is free in a moment whatever
    ///   the bodies do); and a [`run_async`](Executor::run_async) call made
    ///   from one of them (a body that waits for its future) may too, while
    ///   fewer than [`max_overflow`](Self::max_overflow) workers are beyond
    ///   the cap. [`Stats::nested_beyond_cap`](crate::Stats::nested_beyond_cap)
    ///   counts them;
    /// - a blocking call that has waited at the cap for
    ///   [`overflow_after`](Self::overflow_after) while no call of the
    ///   executor finished starts a worker beyond the cap, as long as fewer
    ///   than [`max_overflow`](Self::max_overflow) workers are beyond it:
    ///   the busy workers may be waiting for it (a body that waits for a
    ///   thread of its own, `std::thread::scope` or a rayon pool, that
    ///   calls into the same executor).
    ///
    /// So, but for blocking calls nested in bodies (as deep as the bodies
    /// nest them), the executor never runs more than `max_workers +
    /// max_overflow` worker threads. Other [`run_async`](Executor::run_async)
    /// calls never exceed the cap: they wait in a queue without blocking
    /// anyone. Bodies that wait for `run_async` futures nested deeper than
    /// `max_overflow` at the cap wait for each other: nest blocking calls
    /// instead (`run`, or `#[in_namespace]` on a sync fn).
    #[must_use]
    pub fn max_workers(mut self, n: usize) -> ExecutorBuilder {
        self.config.max_workers = n;
        self
    }

    /// How long an idle worker waits for a call before it exits
    /// (default: 10 s). [`Duration::MAX`] (or any duration too large to
    /// add to the current time) means never.
    ///
    /// nsguard's origin thread, which starts every worker, ends them: it
    /// wakes at the next idle worker's deadline, once per idle timeout (at
    /// most once a millisecond) while every worker is busy, and never while
    /// the executor has no worker. An idle worker waits with no timer of its own, which would
    /// cost every call that wakes it.
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

    /// How many workers the overflow rule may start beyond
    /// [`max_workers`](Self::max_workers) (default: as many as
    /// `max_workers`, so at most twice as many threads). A caller that
    /// waited past [`overflow_after`](Self::overflow_after) while that
    /// many are beyond the cap waits on for a worker to free up. Zero
    /// turns the overflow rule off (as `overflow_after(Duration::MAX)`
    /// does).
    #[must_use]
    pub fn max_overflow(mut self, n: usize) -> ExecutorBuilder {
        self.max_overflow = Some(n);
        self
    }

    /// How long a caller waiting for its result, and a worker waiting for
    /// its next call, spin before they park (default: 20 µs; at most 1 s,
    /// see [`build`](Self::build)). Spinning turns a ~50 µs wake-up into a
    /// sub-microsecond handoff; zero parks at once and saves CPU. A worker
    /// spins only while calls come within the budget: once one came later
    /// (a caller that calls now and then), it parks at once until calls
    /// come quickly again, with a short time slice (see [`Executor`]) while
    /// the gaps are 100 µs or more. A thread whose counterpart waits for
    /// the CPU it runs on (the caller sent its call from there, or the
    /// worker spins there) yields to it before it spins: spinning there
    /// would only keep it waiting.
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
        let mut config = self.config;
        config.max_overflow = self.max_overflow.unwrap_or(config.max_workers);
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
            None => NsSet::current(HOME_KINDS)?,
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
                NsKind::User => own_user_ns()?.ino(),
                _ => origin.location.get(kind),
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
        let scheduler = Scheduler::new(config, kept, origin, worker::main)?;
        registry::register(&scheduler);
        Ok(Executor::from_scheduler(scheduler))
    }
}
