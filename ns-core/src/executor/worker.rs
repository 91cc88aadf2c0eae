//! A worker thread: switches to what each call wants, runs it, checks that
//! the call left the thread where it was, and waits for the next one.

use std::cell::Cell;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::executor::pool::AfterCall;
use crate::executor::pool::{Msg, Shared, WorkerHandle};
use crate::executor::target::{tracked, Profile, Target};
use crate::executor::task::Task;
use crate::kind::NsKind;
use crate::namespace::Namespace;
use crate::set::{NsSet, SETNS_ORDER};
use crate::{sys, thread_state};

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is a worker of some executor.
pub(crate) fn is_worker() -> bool {
    IS_WORKER.try_with(Cell::get).unwrap_or(false)
}

/// Moves the calling thread (the spawner, whose threads inherit its
/// namespaces) into `home` and returns where it then is.
pub(crate) fn settle_in(home: &NsSet) -> Result<Profile> {
    for kind in SETNS_ORDER {
        if let Some(ns) = home.get(kind) {
            if Namespace::current_unchecked(kind)?.id() != ns.id() {
                sys::setns(ns, kind).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
            }
        }
    }
    Profile::of_current_thread()
}

/// Where a worker is, and what it may do.
struct State {
    profile: Profile,
    /// Its effective capabilities when it started: a body that changes them
    /// (they are per thread) would change what later bodies can do.
    caps: Option<u64>,
}

pub(crate) fn main(shared: Arc<Shared>, first: Task) {
    let _ = IS_WORKER.try_with(|w| w.set(true));
    let handle = Arc::new(WorkerHandle::for_current_thread());
    let mut state = match Profile::of_current_thread() {
        Ok(profile) if profile == shared.home_profile => State {
            profile,
            caps: sys::effective_caps().ok(),
        },
        Ok(_) => {
            first.finish(Some(Error::Worker {
                reason: "a new worker did not start in the executor's home namespaces".into(),
            }));
            shared.forget_worker();
            return;
        }
        Err(err) => {
            first.finish(Some(err));
            shared.forget_worker();
            return;
        }
    };
    let mut next = Some(Msg::Task(first));
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match shared.next_msg(&handle) {
                Some(msg) => msg,
                None => return, // idle too long; already off the pool
            },
        };
        let task = match msg {
            Msg::Task(task) => task,
            Msg::Exit => return,
        };
        if !serve(&shared, &mut state, task) {
            shared.forget_worker();
            return;
        }
        match shared.make_idle(&handle, state.profile) {
            AfterCall::Wait => {}
            AfterCall::Serve(task) => next = Some(Msg::Task(task)),
            AfterCall::Exit => return,
        }
    }
}

/// Runs one task. Returns whether the worker may be used again: its
/// namespaces are exactly what `state` says, no guard is left on it, and it
/// is not poisoned.
fn serve(shared: &Shared, state: &mut State, task: Task) -> bool {
    let switched = switch(shared, state, &task.target(), &task.desired);
    if let Err(err) = switched {
        task.finish(Some(err));
        // Retire it: the failure may lie in the worker itself (a body may
        // have dropped its capabilities, which are per thread), and a fresh
        // worker costs one thread start.
        return false;
    }
    task.finish(None);
    // The result is with the caller; check the thread off its latency path.
    // The body may have called setns/unshare itself, leaked a guard,
    // poisoned the thread, or changed its capabilities.
    thread_state::depth() == 0
        && !thread_state::is_poisoned()
        && (!shared.config.check_after_call
            || (sys::effective_caps().ok() == state.caps
                && state.profile.matches_current_thread().unwrap_or(false)))
}

/// Switches the worker to `desired`: one `setns` per kind that differs.
fn switch(
    shared: &Shared,
    state: &mut State,
    target: &Target<'_>,
    desired: &Profile,
) -> Result<()> {
    // Time is tracked but never switched: no call can ask for it.
    for kind in tracked().filter(|k| *k != NsKind::Time) {
        if state.profile.get(kind) == desired.get(kind) {
            continue;
        }
        let Some(ns) = target.get(kind).or_else(|| shared.home.get(kind)) else {
            return Err(Error::Worker {
                reason: format!("no way back to the home {kind} namespace on this worker"),
            });
        };
        if kind == NsKind::Mnt {
            // A thread shares root and cwd with the process until it does
            // this, and setns(CLONE_NEWNS) refuses it before. It cannot be
            // undone: from now on the worker serves this mount namespace.
            sys::unshare_fs().map_err(|errno| Error::Io {
                op: "unshare(CLONE_FS) before entering",
                kind,
                path: ns.path().map(Into::into),
                errno,
            })?;
        }
        sys::setns(ns, kind).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
        state.profile.set(ns.id());
    }
    Ok(())
}
