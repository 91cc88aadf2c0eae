//! tokio runtimes and namespaces (feature `tokio`): a runtime that lives
//! inside a set, and runtimes whose threads stay at home.
//!
//! A thread inherits the namespaces of the thread that starts it, and tokio
//! starts a runtime's blocking-pool threads from whichever thread first
//! needs one. nsguard's own calls never lend the caller's runtime to a
//! body (bodies run in their set's runtime: see the README's async
//! section), but a body that calls a runtime's [`Handle`] it captured, or a
//! thread inside an [`NsGuard`](crate::NsGuard), would start that
//! runtime's next thread inside. [`keep_threads_home`] makes a runtime
//! bring such a thread home before it serves any work; [`build_inside`] is
//! the opposite, a runtime for daemons and sidecars that run entirely
//! inside a set.
//!
//! [`Handle`]: tokio::runtime::Handle

use tokio::runtime::{Builder, Runtime, RuntimeFlavor};

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::executor::set_runtime::{abort, bring_home, Place};
use crate::handle::set::NsSet;
use crate::thread::owners::{disown_runtime_thread, own_runtime_thread};

/// Moves the calling thread to the process's own namespaces, those of the
/// kinds a thread can switch (cgroup, ipc, net, pid, uts): for a thread
/// that was started inside and should serve the host, from a runtime's
/// `on_thread_start` hook of your own.
///
/// # Errors
///
/// [`Error::Worker`] if the thread cannot come all the way home: it entered
/// a mount namespace (its root and cwd are its own), or a user or time
/// namespace, which no thread of a multithreaded process can leave.
/// [`Error::Io`] if a `setns` fails, and the errors of starting nsguard's
/// origin thread (see [`Executor::global`](crate::Executor::global)).
pub fn bring_thread_home() -> Result<()> {
    bring_home()
}

/// Makes every thread of the runtime `builder` builds, workers and blocking
/// pool, start in the process's own namespaces: a thread started inside
/// (from a thread in a namespace of a set) is brought home before it serves
/// any work, so no work of the runtime ever runs inside by accident.
///
/// This sets `builder`'s [`on_thread_start`](Builder::on_thread_start),
/// replacing any hook set before; call [`bring_thread_home`] from your own
/// hook to have both. A thread that cannot come home (see
/// [`bring_thread_home`]) would serve the runtime's work in the wrong
/// namespaces, and a start hook cannot refuse a thread, so the process
/// then aborts with the reason.
///
/// # Examples
///
/// ```
/// let runtime = nsguard::runtime::keep_threads_home(
///     tokio::runtime::Builder::new_multi_thread().enable_all(),
/// )
/// .build()?;
/// # drop(runtime);
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn keep_threads_home(builder: &mut Builder) -> &mut Builder {
    builder.on_thread_start(|| {
        if let Err(err) = bring_home() {
            abort("a thread of a runtime kept", "home", &err);
        }
    })
}

/// Builds a runtime whose threads all live inside `set`: every worker and
/// every blocking-pool thread enters the set's namespaces when it starts,
/// before it runs any task. For daemons and sidecars that serve entirely
/// in a namespace (a DNS proxy or a metrics exporter inside a netns): the
/// tasks spawned on it, the sockets they make and the blocking work they
/// start are all inside.
///
/// `builder` must build a multi-thread runtime
/// ([`Builder::new_multi_thread`]): a current-thread runtime runs its tasks
/// on the thread that calls `block_on`, which no start hook moves. This sets
/// `builder`'s `on_thread_start` and `on_thread_stop`, replacing any hooks
/// set before. The runtime's threads count as nsguard's
/// ([`ThreadOwner::Runtime`](crate::ThreadOwner::Runtime)) and hold the
/// set's namespaces alive until the runtime is dropped. A thread that
/// cannot enter the set (which the checks made here rule out but for
/// resource failures) would run the set's work elsewhere, so the process
/// then aborts with the reason.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a current-thread builder (nothing is left
/// running); the errors of [`NsSet::run`] for a set no thread can enter
/// (a user or time namespace other than the process's own, say: use
/// [`CommandExt`](crate::CommandExt) for those); [`Error::Thread`] if tokio
/// cannot start the runtime's threads.
///
/// # Examples
///
/// ```
/// use nsguard::{Namespace, NsKind, NsSet};
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// let set = NsSet::unshare(NsKind::Net)?;
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// builder.worker_threads(1).enable_all();
/// let runtime = nsguard::runtime::build_inside(&mut builder, &set)?;
/// let seen = runtime.block_on(async {
///     tokio::spawn(async { Namespace::current(NsKind::Net).map(|ns| ns.id()) }).await
/// })
/// .expect("the task ran")?;
/// assert_eq!(Some(seen), set.get(NsKind::Net).map(Namespace::id));
/// # Ok::<(), nsguard::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn build_inside(builder: &mut Builder, set: &NsSet) -> Result<Runtime> {
    let target = crate::executor::SetRef::from_set(set);
    crate::executor::Executor::global()?
        .scheduler()
        .check_runnable(&target)?;
    let place = std::sync::Arc::new(Place::of_set(set)?);
    let runtime = builder
        .on_thread_start(move || {
            own_runtime_thread();
            place.settle_or_abort("a thread of the tokio runtime built inside");
        })
        .on_thread_stop(disown_runtime_thread)
        .build()
        .map_err(|e| Error::Thread {
            purpose: "build a tokio runtime inside a set",
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
        })?;
    if runtime.handle().runtime_flavor() == RuntimeFlavor::CurrentThread {
        runtime.shutdown_background();
        return Err(Error::InvalidConfig {
            setting: "runtime flavor",
            reason: "a current-thread runtime runs its tasks on the thread that calls \
                     block_on, which no start hook moves into the set; build it with \
                     tokio::runtime::Builder::new_multi_thread"
                .into(),
        });
    }
    Ok(runtime)
}
