//! The global executor, and [`NsSet::run`] on it.

use crate::error::Result;
use crate::executor::handle::Executor;
use crate::handle::set::NsSet;
use crate::process::origin;
use crate::sys::fork_local::ForkLocal;

impl Executor {
    /// The process-wide executor that [`NsSet::run`] and `#[in_namespace]`
    /// use, started on first use with the default settings.
    ///
    /// Its home is the process's own namespaces, whatever the state of the
    /// thread that first uses it: nsguard's threads are all started by one
    /// *origin* thread per process, started by the first nsguard call that
    /// can need workers or switch a thread ([`NsSet::enter`],
    /// [`ExecutorBuilder::build`](crate::ExecutorBuilder::build), this function). The origin settles in the main
    /// thread's namespaces (nothing is switched by nsguard before it
    /// exists), and checks that it shares the process's root and cwd and
    /// has the main thread's credentials and capabilities. So workers never
    /// inherit a caller's namespaces, root, cwd or capabilities.
    ///
    /// After `fork(2)`, the child's first use starts a new global executor
    /// (the parent's threads do not exist in the child); so after a
    /// `clone(2)` called directly, which runs no fork handler, unless the
    /// child shares its parent's memory (`CLONE_VM`).
    ///
    /// # Errors
    ///
    /// On the first call (and in a forked child): [`Error::Thread`](crate::Error::Thread) if the
    /// origin thread cannot start; [`Error::Worker`](crate::Error::Worker) if the calling thread
    /// is not a place to start it from (it is inside a guard, has a root or
    /// cwd of its own, or lacks the main thread's capabilities), which a
    /// later call from another thread may not be.
    #[inline]
    pub fn global() -> Result<&'static Executor> {
        /// The global executor of this process's fork generation; one made
        /// before a fork is left to the parent.
        static GLOBAL: ForkLocal<Executor> = ForkLocal::new();
        GLOBAL.get_or_try_make(|| {
            let origin = origin::get()?;
            Executor::builder().home(origin.home.try_clone()?).build()
        })
    }
}

impl NsSet {
    /// Runs `f` on a worker thread of the [global executor](Executor::global)
    /// that is inside every namespace of the set, and returns its value.
    ///
    /// The calling thread is never switched: it blocks until `f` has
    /// returned, which is why `f` may borrow from it, as with
    /// [`std::thread::scope`]. Kinds the set does not name are those of the
    /// process's main thread. A call from inside another `run` for the
    /// namespaces its worker is already in runs inline.
    ///
    /// mnt works (the worker gets a private root and cwd, and then serves
    /// that mount namespace only); pid works (processes spawned in `f` land
    /// in the pid namespace; threads cannot be spawned there, and
    /// `std::thread::Builder::spawn` returns an error). time and user cannot
    /// be entered by any thread: spawn a process into the set instead.
    ///
    /// Threads `f` starts stay in the namespaces for good; work `f` hands to
    /// a thread pool started elsewhere runs outside them.
    ///
    /// For async code use [`run_future`](Self::run_future): `set.run(||
    /// async { .. })` only makes the future inside; it is then polled
    /// outside, on the caller's thread.
    ///
    /// # Errors
    ///
    /// - [`Error::UnsupportedOnThread`](crate::Error::UnsupportedOnThread) if the set has a time or user
    ///   namespace other than the process's own (which needs no switch);
    /// - [`Error::PermissionDenied`](crate::Error::PermissionDenied) or [`Error::Enter`](crate::Error::Enter) if the worker cannot
    ///   enter a namespace (`f` does not run);
    /// - [`Error::Worker`](crate::Error::Worker) if no worker thread can be started;
    /// - [`Error::Poisoned`](crate::Error::Poisoned) if the calling thread is poisoned.
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic is caught on the worker and re-raised here
    /// with its original payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let sandbox = NsSet::unshare(NsKind::Net)?;
    /// let mut names = Vec::new();
    /// sandbox.run(|| {
    ///     // on a worker inside `sandbox`; `names` is borrowed from the caller
    ///     for iface in nix::net::if_::if_nameindex().unwrap().iter() {
    ///         names.push(iface.name().to_string_lossy().into_owned());
    ///     }
    /// })?;
    /// assert_eq!(names, ["lo"]); // a new network namespace has only `lo`
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        Executor::global()?.run(self, f)
    }
}
