//! [`Executor`]: pinned worker threads that run code inside namespaces.

mod future;
mod handoff;
mod pool;
pub(crate) mod target;
mod task;
mod worker;

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::kind::NsKinds;
use crate::set::NsSet;
use crate::thread_state;

pub use future::RunAsync;
pub(crate) use future::RunFuture;
pub(crate) use target::Target;

use pool::{Config, Shared};

/// A pool of worker threads that run closures inside namespaces, so that
/// the caller's thread is never switched.
///
/// Each worker is an OS thread owned by the executor and remembers which
/// namespaces it is in. A call goes to an idle worker already in the target
/// namespaces (no `setns` at all); else to an idle worker that switches
/// straight there (one `setns` per kind that differs); else to a new worker,
/// up to [`max_workers`](Builder::max_workers); else it waits. Workers idle
/// for [`idle_timeout`](Builder::idle_timeout) exit. Handing a call over
/// spins for a short while before parking, which keeps a warm call in the
/// sub-microsecond range; an idle executor uses no CPU.
///
/// Kinds that a call's set does not name are those of the executor's *home*:
/// the namespaces of the thread that built it ([`Builder::home`] to choose),
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
        self.shared.shutdown();
    }
}

/// Builds an [`Executor`] with its own settings: see [`Executor::builder`].
#[derive(Debug)]
pub struct Builder {
    config: Config,
    home: Option<NsSet>,
}

impl Default for Builder {
    fn default() -> Builder {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Builder {
            config: Config {
                max_workers: (4 * cores).max(8),
                idle_timeout: Duration::from_secs(10),
                spin: Duration::from_micros(20),
                check_after_call: true,
            },
            home: None,
        }
    }
}

impl Builder {
    /// The most worker threads the executor keeps (default: 4 per core, at
    /// least 8). Calls beyond it wait for a worker, except nested calls made
    /// from inside a worker, which may exceed it so that nesting never
    /// deadlocks.
    #[must_use]
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.config.max_workers = n.max(1);
        self
    }

    /// How long an idle worker waits for a call before it exits
    /// (default: 10 s).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Builder {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long a caller waiting for its result, and a worker waiting for
    /// its next call, spin before they park (default: 20 µs). Spinning
    /// turns a ~50 µs wake-up into a sub-microsecond handoff; zero parks at
    /// once and saves CPU.
    #[must_use]
    pub fn spin(mut self, budget: Duration) -> Builder {
        self.config.spin = budget;
        self
    }

    /// Whether a worker checks, after every call, that the body left its
    /// thread as it found it: its namespaces and its capabilities (default:
    /// true).
    ///
    /// The check is exact: it reads the worker's id of every kind a thread
    /// can change (7 `readlinkat`s on `/proc/thread-self/ns`), after the
    /// result was handed back, so it costs the caller no latency, but it
    /// costs CPU: ~1.9 µs a kind on a small VM, far more than the rest of a
    /// warm call (~0.4 µs), which bounds the calls per second one executor
    /// can serve on few cores.
    ///
    /// Turn it off only when no body calls `setns(2)`, `unshare(2)` or
    /// `capset(2)` itself (directly or through a library). Leaked guards and
    /// poisoned threads are still caught, since that costs nothing; but a
    /// worker whose body switched its namespaces would then serve later calls
    /// in the wrong ones. (Even a single extra system call after each call
    /// matters here: the caller's next call comes within ~100 ns and finds
    /// the worker still busy checking.)
    #[must_use]
    pub fn check_after_call(mut self, check: bool) -> Builder {
        self.config.check_after_call = check;
        self
    }

    /// The namespaces workers return to for kinds a call does not name
    /// (default: those of the thread that calls [`build`](Self::build)).
    /// Only the kinds a thread can switch are used (net, uts, ipc, cgroup,
    /// pid).
    #[must_use]
    pub fn home(mut self, home: NsSet) -> Builder {
        self.home = Some(home);
        self
    }

    /// Starts the executor. Workers start on the first calls.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if the calling thread is poisoned and no home was
    /// given; errors opening or entering the home namespaces; and
    /// [`Error::Worker`] if the executor's helper thread cannot start.
    pub fn build(self) -> Result<Executor> {
        let home = match self.home {
            Some(home) => home,
            None => NsSet::current(NsKinds::THREAD_SWITCHABLE)?,
        };
        let home: NsSet = home
            .into_iter()
            .filter(|ns| ns.kind().is_thread_switchable())
            .collect();
        let shared = Shared::start(self.config, home)?;
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
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The process-wide executor that [`NsSet::run`] and `#[in_namespace]`
    /// use, started on first use with the default settings. Its home is the
    /// namespaces of the process's main thread.
    ///
    /// # Errors
    ///
    /// The errors of [`Builder::build`], on the first call only.
    pub fn global() -> Result<&'static Executor> {
        static GLOBAL: OnceLock<Executor> = OnceLock::new();
        static INIT: Mutex<()> = Mutex::new(());
        if let Some(executor) = GLOBAL.get() {
            return Ok(executor);
        }
        let _init = INIT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(executor) = GLOBAL.get() {
            return Ok(executor);
        }
        let main_thread = format!("/proc/self/task/{}/ns", std::process::id());
        let home = NsSet::from_dir(main_thread, NsKinds::THREAD_SWITCHABLE)
            .or_else(|_| NsSet::current(NsKinds::THREAD_SWITCHABLE))?;
        let executor = Executor::builder().home(home).build()?;
        Ok(GLOBAL.get_or_init(|| executor))
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
        target.check_runnable()?;
        let shared = &self.handle.shared;
        let desired = shared.home_profile.overlaid(target);
        let on_worker = worker::is_worker();
        // A body calling for the namespaces its worker is in runs inline.
        if on_worker && thread_state::depth() == 0 && desired.matches_current_thread()? {
            return Ok(f());
        }
        let outcome = handoff::call(target, desired, f, shared.config.spin, |task| {
            shared.dispatch(task, on_worker);
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
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (workers, idle) = self.handle.shared.counts();
        f.debug_struct("Executor")
            .field("workers", &workers)
            .field("idle", &idle)
            .field("config", &self.handle.shared.config)
            .finish()
    }
}
