//! Every executor of the process, for eviction (when the program drops its
//! last handle to a namespace, idle workers inside it go home, and
//! `netns::delete` waits until no worker is inside) and for the idle
//! timeout (the origin thread ends idle workers through [`end_idle`]).
//!
//! The handle registry (`handle::registry`) is told of a last handle
//! first; it calls [`on_last_handle_dropped`] through the hook that
//! [`register`] installs, so that the handles know nothing of executors.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::error::Result;
use crate::executor::scheduler::Scheduler;
use crate::handle::registry::set_last_handle_hook;
use crate::process::origin::set_idle_hook;
use crate::sync::time::Instant;
use crate::sys::fork_local::ForkLocal;

/// Every executor made in this fork generation (a forked child starts with
/// none: its parent's have no threads in it, and their list's lock may
/// have been held at the fork).
static EXECUTORS: ForkLocal<Mutex<Vec<Weak<Scheduler>>>> = ForkLocal::new();

fn executors_lock() -> MutexGuard<'static, Vec<Weak<Scheduler>>> {
    let made = EXECUTORS.get_or_try_make(|| Ok::<_, std::convert::Infallible>(Mutex::default()));
    let Ok(list) = made;
    list.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a new executor among the process's.
pub(crate) fn register(scheduler: &Arc<Scheduler>) {
    set_last_handle_hook(on_last_handle_dropped);
    set_idle_hook(end_idle);
    executors_lock().push(Arc::downgrade(scheduler));
}

/// The live executors of this process.
fn executors() -> Vec<Arc<Scheduler>> {
    let mut list = executors_lock();
    list.retain(|w| w.strong_count() > 0);
    list.iter().filter_map(Weak::upgrade).collect()
}

/// The program dropped its last handle to the namespace with inode `ino`:
/// idle workers inside go home (busy ones do when their call ends).
fn on_last_handle_dropped(ino: u64) {
    for scheduler in executors() {
        scheduler.evict(ino);
    }
    #[cfg(feature = "tokio")]
    crate::executor::set_runtime::evict(ino);
}

/// Ends the workers of every executor that have been idle for its idle
/// timeout, and says how long until the next one might have (`None`: no
/// executor has a worker).
fn end_idle() -> Option<Duration> {
    let now = Instant::now();
    executors()
        .iter()
        .filter_map(|scheduler| scheduler.end_idle(now))
        .min()
        .map(|next| next.duration_since(now))
}

/// Waits until no worker of any executor is in the namespace with inode
/// `ino`, as long as the program holds no handle to it.
pub(crate) fn wait_until_left(ino: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    for scheduler in executors() {
        scheduler.evict(ino);
        scheduler.wait_left(ino, deadline)?;
    }
    #[cfg(feature = "tokio")]
    if !crate::handle::registry::is_held(ino)
        && !crate::executor::set_runtime::wait_stopped(ino, deadline)
    {
        return Err(crate::error::Error::Worker {
            cause: crate::error::WorkerCause::StillInside,
            reason: format!(
                "a blocking thread of nsguard's tokio runtime for the namespace with inode \
                 {ino} is still running a task there after the program dropped its last handle"
            ),
        });
    }
    Ok(())
}
