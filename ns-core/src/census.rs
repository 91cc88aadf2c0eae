//! [`stray_threads`]: every thread of the process that is not in the
//! process's own namespaces, as a library call (the thread-leak scan CNI
//! plugins write by hand), for tests and health checks.

use crate::error::Result;
use crate::kind::NsKinds;
use crate::process::origin;
use crate::thread::census::tasks;
use crate::thread::location::Location;
use crate::thread::owners::{role_of, Role};

/// What nsguard uses a thread for: see [`StrayThread::owner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadOwner {
    /// A worker of an [`Executor`](crate::Executor), serving a call or
    /// kept warm inside while the program holds a handle to the namespace,
    /// or one retired inside, on its way out (its thread locals' destructors
    /// may still run there).
    Worker,
    /// A thread inside an [`NsGuard`](crate::NsGuard).
    Guard,
    /// A thread of a tokio runtime that nsguard runs in a set (feature
    /// `tokio`): the blocking threads of the runtime that bodies run in,
    /// which live in their set and exit a second after their last work, or
    /// of a runtime built with `nsguard::runtime::build_inside`.
    Runtime,
    /// Not nsguard's: a thread started inside (by a body, or while a guard
    /// was alive, since a new thread inherits the namespaces of the thread
    /// that creates it), or one that switched by itself.
    None,
}

/// A thread of this process that is not in the process's own namespaces:
/// see [`stray_threads`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StrayThread {
    /// Its id, as `gettid(2)` returns it in this process's pid namespace.
    pub tid: i32,
    /// Its name (`/proc/self/task/<tid>/comm`), e.g. `tokio-runtime-w`.
    pub name: String,
    /// The kinds whose namespace differs from the process's own (for pid
    /// and time: the namespace its children would get).
    pub kinds: NsKinds,
    /// Whether nsguard uses it.
    pub owner: ThreadOwner,
}

/// Every thread of this process that is not in the process's own
/// namespaces (those of its main thread when nsguard first started a
/// thread), with the kinds that differ and whether nsguard uses it.
///
/// nsguard's own workers show up while they serve a call, while they are
/// kept warm in a namespace the program holds a handle to, and when they
/// were retired inside, until their thread is gone; threads inside a guard
/// while it lives. Any other thread here was started inside
/// (by a body, or while a guard was alive) or switched by itself, and stays
/// there: the bug "a thread left in a container's namespace later serves
/// host work" is a thread in this list that belongs to a pool. A thread
/// that is exiting (one that `join` has returned for, say) is not listed.
/// A thread there from the start of the call to its end is listed while
/// others begin and end: a listing of `/proc/self/task` that a thread's end
/// may have cut short is made again, up to 8 times (then all that the
/// listings found is read).
///
/// # Errors
///
/// The errors of starting nsguard's origin thread (see
/// [`Executor::global`](crate::Executor::global)), and [`Error::Io`] if
/// `/proc/self/task` cannot be read.
///
/// [`Error::Io`]: crate::Error::Io
///
/// # Examples
///
/// ```
/// // A health check: no thread of this process outside its own namespaces,
/// // but nsguard's workers.
/// let strays: Vec<_> = nsguard::stray_threads()?
///     .into_iter()
///     .filter(|t| t.owner != nsguard::ThreadOwner::Worker)
///     .collect();
/// assert!(strays.is_empty(), "{strays:?}");
/// # Ok::<(), nsguard::Error>(())
/// ```
pub fn stray_threads() -> Result<Vec<StrayThread>> {
    let home = origin::get()?.location;
    strays(&home)
}

/// The threads away from `home`, nsguard's own included.
pub(crate) fn strays(home: &Location) -> Result<Vec<StrayThread>> {
    Ok(tasks()?
        .into_iter()
        .filter_map(|task| {
            let kinds = task.location.differing(home);
            (!kinds.is_empty()).then(|| StrayThread {
                tid: task.tid,
                owner: match role_of(task.tid, task.start) {
                    Some(Role::Worker) => ThreadOwner::Worker,
                    Some(Role::Guard) => ThreadOwner::Guard,
                    Some(Role::Runtime) => ThreadOwner::Runtime,
                    None => ThreadOwner::None,
                },
                name: task.name,
                kinds,
            })
        })
        .collect())
}
