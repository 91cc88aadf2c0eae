//! [`Pool`]: fresh namespace sets made ahead of time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds};
use crate::process::helper_thread::thread_error;
use crate::sys::probe::check_supported;

/// A setup hook: runs on a worker inside each new set.
type Setup =
    dyn Fn() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync;

/// Keeps a number of new namespace sets ready, so that callers do not pay
/// the cost of creating them (`unshare(CLONE_NEWNET)` alone takes hundreds
/// of microseconds, a new mount namespace far more on a busy host).
///
/// A background thread creates the sets (with [`NsSet::unshare`]), runs the
/// setup hook inside each (with [`NsSet::run`]), and refills the pool as
/// sets are taken. Each set is handed out once. Dropping the pool stops the
/// thread and drops the sets that were not taken.
///
/// When making a set fails, the thread waits before it tries again, twice
/// as long after each failure in a row (from 100 ms up to 10 s), and keeps
/// the error: [`last_error`](Self::last_error) shows it. An error that
/// trying again cannot cure (a missing capability, a kind the kernel lacks,
/// a kind that cannot be created this way: see
/// [`try_wait_full`](Self::try_wait_full)) stops the refill for good; from
/// then on [`get`](Self::get) returns that error once no set is ready, and
/// [`try_wait_full`](Self::try_wait_full) returns it at once. A panic while
/// making a set (in the setup hook) counts as a failure of the hook: the
/// thread never dies of it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nsguard::{NsKind, Pool};
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// let pool = Pool::builder(NsKind::Net | NsKind::Uts)
///     .size(2)
///     .setup(|| {
///         nix::unistd::sethostname("sandbox")?;
///         Ok(())
///     })
///     .build()?;
/// assert!(pool.wait_full(Duration::from_secs(10)));
/// assert_eq!(pool.ready_count(), 2);
/// let sandbox = pool.get()?; // ready, with its host name set
/// let name = sandbox.run(nix::unistd::gethostname)??;
/// assert_eq!(name, "sandbox");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    shared: Arc<Supply>,
    refiller: Option<JoinHandle<()>>,
}

/// Builds a [`Pool`]: see [`Pool::builder`], and [`Pool`] for an example.
pub struct PoolBuilder {
    kinds: NsKinds,
    size: usize,
    setup: Option<Arc<Setup>>,
}

/// What the pool's handle and its refill thread share: the settings, the
/// stock of ready sets, and a condvar for changes to it.
struct Supply {
    kinds: NsKinds,
    size: usize,
    setup: Option<Arc<Setup>>,
    stock: Mutex<Stock>,
    changed: Condvar,
}

/// The ready sets, and how the refill is doing.
struct Stock {
    ready: VecDeque<NsSet>,
    stop: bool,
    /// The refill's most recent error, cleared by a success.
    last_error: Option<Error>,
    /// The error that stopped the refill for good.
    stopped: Option<Error>,
}

/// The first wait after a failed refill, doubled after each failure in a
/// row up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Whether trying again cannot cure `err`: the refill stops on it.
fn is_permanent(err: &Error) -> bool {
    match err {
        Error::PermissionDenied { .. }
        | Error::KindUnsupported { .. }
        | Error::CannotCreate { .. }
        | Error::UnsupportedOnThread { .. }
        | Error::Poisoned { .. } => true,
        Error::Create { errno, .. } | Error::Io { errno, .. } | Error::Enter { errno, .. } => {
            matches!(
                *errno,
                Errno::EINVAL | Errno::ENOSYS | Errno::EPERM | Errno::EACCES | Errno::EOPNOTSUPP
            )
        }
        // Out of memory, fds, threads or namespaces (ENOSPC), or a hook
        // that failed this time: maybe not next time.
        _ => false,
    }
}

/// The text of a panic payload; the payload is dropped where a panic in
/// its own `Drop` cannot escape.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
    text
}

fn lock(m: &Mutex<Stock>) -> MutexGuard<'_, Stock> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    /// A builder for a pool of sets of new namespaces of `kinds`.
    pub fn builder(kinds: impl Into<NsKinds>) -> PoolBuilder {
        PoolBuilder {
            kinds: kinds.into(),
            size: 4,
            setup: None,
        }
    }

    /// Takes a ready set, or creates one now if none is ready.
    ///
    /// # Errors
    ///
    /// When no set is ready: the error that stopped the refill, if one did
    /// (see [`try_wait_full`](Self::try_wait_full)), without trying again;
    /// else those of creating a set and running the setup hook.
    pub fn get(&self) -> Result<NsSet> {
        let (taken, stopped) = {
            let mut state = lock(&self.shared.stock);
            let set = state.ready.pop_front();
            self.shared.changed.notify_all();
            (set, state.stopped.clone())
        };
        match (taken, stopped) {
            (Some(set), _) => Ok(set),
            (None, Some(err)) => Err(err),
            (None, None) => self.shared.make(),
        }
    }

    /// The most recent error of the background refill, if its last attempt
    /// failed (a success clears it).
    pub fn last_error(&self) -> Option<Error> {
        lock(&self.shared.stock).last_error.clone()
    }

    /// The number of sets ready now.
    pub fn ready_count(&self) -> usize {
        lock(&self.shared.stock).ready.len()
    }

    /// Waits until the pool is full, or `timeout` has passed, or the refill
    /// has stopped on an error; returns whether it is full. See
    /// [`try_wait_full`](Self::try_wait_full) for the error.
    pub fn wait_full(&self, timeout: Duration) -> bool {
        self.try_wait_full(timeout).unwrap_or(false)
    }

    /// Waits until the pool is full (`Ok(true)`), or `timeout` has passed
    /// (`Ok(false)`; [`last_error`](Self::last_error) tells whether the
    /// refill is failing meanwhile).
    ///
    /// # Errors
    ///
    /// The error that stopped the refill for good, as soon as it has: one
    /// that trying again cannot cure, such as [`Error::PermissionDenied`]
    /// (the thread that built the pool lacked `CAP_SYS_ADMIN`),
    /// [`Error::KindUnsupported`], [`Error::CannotCreate`], or
    /// [`Error::Create`]/[`Error::Io`] with `EINVAL`, `ENOSYS`, `EPERM`,
    /// `EACCES` or `EOPNOTSUPP`.
    pub fn try_wait_full(&self, timeout: Duration) -> Result<bool> {
        let state = lock(&self.shared.stock);
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| {
                s.ready.len() < self.shared.size && !s.stop && s.stopped.is_none()
            })
            .unwrap_or_else(|p| p.into_inner());
        if state.ready.len() >= self.shared.size {
            return Ok(true);
        }
        match &state.stopped {
            Some(err) => Err(err.clone()),
            None => Ok(false),
        }
    }
}

impl PoolBuilder {
    /// How many sets to keep ready (default: 4).
    #[must_use]
    pub fn size(mut self, size: usize) -> PoolBuilder {
        self.size = size;
        self
    }

    /// A hook to run inside each new set, on a worker (see [`NsSet::run`]),
    /// before the set is handed out: configure interfaces, set the host
    /// name, mount file systems… A set whose hook fails is dropped.
    #[must_use]
    pub fn setup(
        mut self,
        hook: impl Fn() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
            + Send
            + Sync
            + 'static,
    ) -> PoolBuilder {
        self.setup = Some(Arc::new(hook));
        self
    }

    /// Starts the pool; it fills in the background.
    ///
    /// # Errors
    ///
    /// [`Error::CannotCreate`] for pid; [`Error::KindUnsupported`] for a
    /// kind the running kernel lacks; [`Error::UnsupportedOnThread`] for a
    /// setup hook with user or time in the kinds (no worker can run inside
    /// those); [`Error::Thread`] if the background thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Error, NsKind, Pool};
    ///
    /// // A pid namespace exists only with its first process: no pool of them.
    /// let err = Pool::builder(NsKind::Net | NsKind::Pid).build().unwrap_err();
    /// assert!(matches!(err, Error::CannotCreate { kind: NsKind::Pid, .. }));
    /// ```
    pub fn build(self) -> Result<Pool> {
        check_supported(self.kinds)?;
        if self.kinds.contains(NsKind::Pid) {
            // Reuse the creation check's error.
            NsSet::unshare(NsKind::Pid)?;
        }
        if self.setup.is_some() {
            for kind in [NsKind::User, NsKind::Time] {
                if self.kinds.contains(kind) {
                    let (reason, instead) = kind.thread_refusal().unwrap_or(("", ""));
                    return Err(Error::UnsupportedOnThread {
                        kind,
                        reason,
                        instead,
                    });
                }
            }
        }
        let shared = Arc::new(Supply {
            kinds: self.kinds,
            size: self.size,
            setup: self.setup,
            stock: Mutex::new(Stock {
                ready: VecDeque::new(),
                stop: false,
                last_error: None,
                stopped: None,
            }),
            changed: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let refiller = std::thread::Builder::new()
            .name("nsguard-pool".into())
            .spawn(move || for_thread.refill())
            .map_err(|e| thread_error("refill the pool", &e))?;
        Ok(Pool {
            shared,
            refiller: Some(refiller),
        })
    }
}

impl Supply {
    fn make(&self) -> Result<NsSet> {
        let set = NsSet::unshare(self.kinds)?;
        if let Some(setup) = &self.setup {
            set.run(|| setup())?.map_err(|e| Error::Setup {
                reason: "returned an error".into(),
                source: Some(Arc::new(e)),
            })?;
        }
        Ok(set)
    }

    /// The background thread: keeps the pool full, backs off on failures,
    /// stops on an error that cannot cure itself. Never panics.
    fn refill(&self) {
        let mut failures: u32 = 0;
        loop {
            {
                let state = lock(&self.stock);
                let state = self
                    .changed
                    .wait_while(state, |s| s.ready.len() >= self.size && !s.stop)
                    .unwrap_or_else(|p| p.into_inner());
                if state.stop {
                    return;
                }
            }
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.make()))
                .unwrap_or_else(|payload| {
                    Err(Error::Setup {
                        reason: format!("panicked: {}", panic_message(payload)),
                        source: None,
                    })
                });
            let mut state = lock(&self.stock);
            if state.stop {
                return;
            }
            match made {
                Ok(set) => {
                    failures = 0;
                    state.last_error = None;
                    state.ready.push_back(set);
                    self.changed.notify_all();
                }
                Err(err) => {
                    let permanent = is_permanent(&err);
                    state.last_error = Some(err.clone());
                    if permanent {
                        state.stopped = Some(err);
                        self.changed.notify_all();
                        return;
                    }
                    let delay = BACKOFF_FIRST
                        .saturating_mul(1 << failures.min(16))
                        .min(BACKOFF_MAX);
                    failures = failures.saturating_add(1);
                    // Woken early only to stop.
                    let _ = self
                        .changed
                        .wait_timeout_while(state, delay, |s| !s.stop)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.stock).stop = true;
        self.shared.changed.notify_all();
        if let Some(refiller) = self.refiller.take() {
            let _ = refiller.join();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("kinds", &self.shared.kinds)
            .field("size", &self.shared.size)
            .field("ready", &self.ready_count())
            .finish()
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("kinds", &self.kinds)
            .field("size", &self.size)
            .field("setup", &self.setup.is_some())
            .finish()
    }
}
