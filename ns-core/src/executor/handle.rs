//! [`Executor`]: a handle to a pool of pinned workers; its blocking `run`.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::executor::handoff;
use crate::executor::scheduler::{is_worker_of, Scheduler};
use crate::executor::set_ref::SetRef;
use crate::executor::stats::Stats;
use crate::executor::task::{Task, Work};
use crate::handle::set::NsSet;
use crate::process::user_code::reraise;
use crate::thread::marks;

/// A pool of worker threads that run closures inside namespaces, so that
/// the caller's thread is never switched.
///
/// Each worker is an OS thread owned by the executor and remembers which
/// namespaces it is in. A call goes to an idle worker already in the target
/// namespaces (no `setns` at all); else to an idle worker that switches
/// straight there (one `setns` per kind that differs); else to a new worker,
/// up to [`max_workers`](crate::ExecutorBuilder::max_workers); else it waits. Workers idle
/// for [`idle_timeout`](crate::ExecutorBuilder::idle_timeout) exit. Handing a call over
/// spins for a short while before parking, which keeps a warm call in the
/// sub-microsecond range; an idle executor uses no CPU. A worker that waits
/// for a caller that calls now and then, while no other worker is busy,
/// asks the kernel for a short time slice (0.3 ms, Linux 6.12 and later),
/// so that the caller's wake-up runs it at once; the threads and processes
/// its bodies start get the kernel's default (`SCHED_FLAG_RESET_ON_FORK`).
///
/// Kinds that a call's set does not name are those of the executor's *home*:
/// the namespaces of the thread that built it ([`ExecutorBuilder::home`](crate::ExecutorBuilder::home) to choose),
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
    handle: Arc<PoolHandle>,
}

/// Shuts the pool down when the last [`Executor`] handle goes.
struct PoolHandle {
    scheduler: Arc<Scheduler>,
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        // In a forked child the workers are the parent's: nothing to shut
        // down here, and the books' lock may have been held at the fork.
        if self.scheduler.is_in_this_process() {
            self.scheduler.shutdown();
        }
    }
}

impl Executor {
    /// The first handle to a new pool.
    pub(crate) fn from_scheduler(scheduler: Arc<Scheduler>) -> Executor {
        Executor {
            handle: Arc::new(PoolHandle { scheduler }),
        }
    }

    /// The pool's books.
    pub(crate) fn scheduler(&self) -> &Arc<Scheduler> {
        &self.handle.scheduler
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
        refuse_code::<R>("run")?;
        self.run_target(&SetRef::from_set(set), f)
    }

    /// [`run`](Self::run) for borrowed namespaces.
    pub(crate) fn run_target<'a, R, F>(&self, target: &SetRef<'a>, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'a,
        R: Send + 'a,
    {
        marks::check()?;
        let scheduler = self.scheduler();
        scheduler.check_usable()?;
        scheduler.check_runnable(target)?;
        let desired = scheduler.home_location.overlaid(target.ids());
        // A body calling for the namespaces its worker is in runs inline.
        if is_worker_of(scheduler) && marks::depth() == 0 && desired.matches_current_thread()? {
            return Ok(f());
        }
        // With tokio, the body runs in its place's runtime (set_runtime.rs).
        #[cfg(feature = "tokio")]
        let f = {
            let context = crate::executor::set_runtime::context_for(scheduler, target, &desired)?;
            move || {
                let _entered = context.as_ref().map(tokio::runtime::Handle::enter);
                f()
            }
        };
        let outcome = handoff::call(target, f, scheduler.config.spin, |scoped| {
            scheduler.dispatch(Task {
                work: Work::Scoped(scoped),
                desired,
            })
        })?;
        match outcome {
            Ok(value) => Ok(value),
            Err(panic) => reraise(panic),
        }
    }

    /// The number of live worker threads, busy or idle.
    pub fn workers(&self) -> usize {
        self.scheduler().counts().0
    }

    /// The number of idle worker threads.
    pub fn idle_workers(&self) -> usize {
        self.scheduler().counts().1
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
        self.scheduler().stats()
    }

    /// How many workers were started beyond
    /// [`max_workers`](crate::ExecutorBuilder::max_workers) because callers waited at the
    /// cap while no call finished (see [`ExecutorBuilder::overflow_after`](crate::ExecutorBuilder::overflow_after)).
    pub fn overflowed_workers(&self) -> u64 {
        self.scheduler().counts().2
    }
}

/// Refuses a body that returns code, a future or a closure, which would run
/// on the caller's thread: [`Error::ReturnsCode`]. Told by the type's name,
/// since stable Rust cannot bound a type parameter by a trait it must not
/// implement: the compiler names every `async` block, `async fn` future and
/// closure `…{{closure}}`, and nothing else ends so.
#[inline]
pub(crate) fn refuse_code<R>(call: &'static str) -> Result<()> {
    let returned = std::any::type_name::<R>();
    if is_code(returned) {
        return Err(Error::ReturnsCode { call, returned });
    }
    Ok(())
}

/// Whether a type's name is that of a closure or future, bare or boxed.
///
/// This runs on every call: the substring searches, whose setup costs more
/// than the rest of the test, run only for a name with a space in it, as
/// every trait object's has (`dyn …`).
#[inline]
fn is_code(name: &str) -> bool {
    let bare = name.trim_end_matches('>');
    bare.ends_with("{{closure}}")
        || (name.contains(' ')
            && (bare.contains("dyn core::future::future::Future")
                || bare.contains("dyn core::ops::function::Fn")))
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (workers, idle, _) = self.scheduler().counts();
        f.debug_struct("Executor")
            .field("workers", &workers)
            .field("idle", &idle)
            .field("config", &self.scheduler().config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::is_code;

    fn name<R>(_: impl FnOnce() -> R) -> &'static str {
        std::any::type_name::<R>()
    }

    async fn answer() -> u32 {
        42
    }

    #[test]
    fn futures_and_closures_are_told_from_values() {
        assert!(is_code(name(|| async { 1 })));
        assert!(is_code(name(|| async move { 1 })));
        assert!(is_code(name(answer)));
        assert!(is_code(name(|| Box::pin(async { 1 }))));
        let boxed: Box<dyn std::future::Future<Output = u8> + Send> = Box::new(async { 1 });
        let mut boxed = Some(boxed);
        assert!(is_code(name(move || boxed.take())));
        assert!(is_code(name(|| || 1)));
        assert!(!is_code(name(|| 1)));
        assert!(!is_code(name(|| vec![String::new()])));
        assert!(!is_code(name(|| std::io::Result::Ok(()))));
        assert!(!is_code(name(|| std::future::ready(1))));
        // Names with a space that are not code.
        let plain: fn() -> u8 = || 1;
        assert!(!is_code(name(move || plain)));
        assert!(!is_code(name(|| {
            Box::<dyn std::error::Error + Send + Sync>::from("no")
        })));
        let call: Box<dyn Fn() -> u8 + Send> = Box::new(|| 1);
        let mut call = Some(call);
        assert!(is_code(name(move || call.take())));
    }
}
