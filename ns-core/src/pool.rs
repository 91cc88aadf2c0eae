//! [`Pool`]: fresh namespace sets made ahead of time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kind::{NsKind, NsKinds};
use crate::set::NsSet;

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
/// ```no_run
/// use nsguard::{NsKind, Pool};
///
/// let pool = Pool::builder(NsKind::Net | NsKind::Uts)
///     .size(8)
///     .setup(|| {
///         nix::unistd::sethostname("sandbox")?;
///         Ok(())
///     })
///     .build()?;
/// let sandbox = pool.get()?; // ready, with its host name set
/// # Ok::<(), nsguard::Error>(())
/// ```
pub struct Pool {
    shared: Arc<Shared>,
    refiller: Option<JoinHandle<()>>,
}

/// Builds a [`Pool`]: see [`Pool::builder`].
pub struct PoolBuilder {
    kinds: NsKinds,
    size: usize,
    setup: Option<Arc<Setup>>,
}

struct Shared {
    kinds: NsKinds,
    size: usize,
    setup: Option<Arc<Setup>>,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    ready: VecDeque<NsSet>,
    stop: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
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
    /// Those of creating a set and running the setup hook, when none was
    /// ready.
    pub fn get(&self) -> Result<NsSet> {
        let taken = {
            let mut state = lock(&self.shared.state);
            let set = state.ready.pop_front();
            self.shared.changed.notify_all();
            set
        };
        match taken {
            Some(set) => Ok(set),
            None => self.shared.make(),
        }
    }

    /// The number of sets ready now.
    pub fn ready(&self) -> usize {
        lock(&self.shared.state).ready.len()
    }

    /// Waits until the pool is full, or `timeout` has passed; returns
    /// whether it is full.
    pub fn wait_full(&self, timeout: Duration) -> bool {
        let state = lock(&self.shared.state);
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| {
                s.ready.len() < self.shared.size && !s.stop
            })
            .unwrap_or_else(|p| p.into_inner());
        state.ready.len() >= self.shared.size
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
    /// [`Error::CannotCreate`] for pid; [`Error::UnsupportedOnThread`] for a
    /// setup hook with user or time in the kinds (no worker can run inside
    /// those); [`Error::Worker`] if the background thread cannot start.
    pub fn build(self) -> Result<Pool> {
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
        let shared = Arc::new(Shared {
            kinds: self.kinds,
            size: self.size,
            setup: self.setup,
            state: Mutex::new(State {
                ready: VecDeque::new(),
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let refiller = std::thread::Builder::new()
            .name("nsguard-pool".into())
            .spawn(move || for_thread.refill())
            .map_err(|e| Error::Worker {
                reason: format!("cannot start the pool's thread: {e}"),
            })?;
        Ok(Pool {
            shared,
            refiller: Some(refiller),
        })
    }
}

impl Shared {
    fn make(&self) -> Result<NsSet> {
        let set = NsSet::unshare(self.kinds)?;
        if let Some(setup) = &self.setup {
            set.run(|| setup())?.map_err(|e| Error::Setup {
                reason: e.to_string(),
            })?;
        }
        Ok(set)
    }

    fn refill(&self) {
        loop {
            {
                let state = lock(&self.state);
                let state = self
                    .changed
                    .wait_while(state, |s| s.ready.len() >= self.size && !s.stop)
                    .unwrap_or_else(|p| p.into_inner());
                if state.stop {
                    return;
                }
            }
            match self.make() {
                Ok(set) => {
                    let mut state = lock(&self.state);
                    if state.stop {
                        return;
                    }
                    state.ready.push_back(set);
                    self.changed.notify_all();
                }
                // Out of some resource, or a failing hook: try again later,
                // without spinning; `get` reports the error to a caller.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
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
            .field("ready", &self.ready())
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
