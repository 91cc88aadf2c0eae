//! A worker thread: switches to what each call wants, runs it, checks that
//! the call left the thread as it was, and waits for the next one.

use std::cell::Cell;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::executor::facts::{Facts, FactsReader};
use crate::executor::pool::{AfterCall, Msg, Shared, WorkerHandle};
use crate::executor::stats::{Counters, Retirement};
use crate::executor::target::{tracked, Profile, Target};
use crate::executor::task::Task;
use crate::kind::NsKind;
use crate::namespace::Namespace;
use crate::set::{NsSet, SETNS_ORDER};
use crate::{sys, thread_state};

thread_local! {
    /// The executor (its shared state's address and fork generation) whose
    /// worker this thread is; `(0, 0)` for other threads.
    static WORKER_OF: Cell<(usize, u64)> = const { Cell::new((0, 0)) };
}

/// Whether the calling thread is a worker of `shared`'s executor.
pub(crate) fn is_worker_of(shared: &Arc<Shared>) -> bool {
    let me = (Arc::as_ptr(shared) as usize, shared.generation);
    WORKER_OF.try_with(Cell::get).is_ok_and(|w| w == me)
}

/// Moves the calling thread into `home`, one `setns` per kind it is not
/// already in.
pub(crate) fn settle_in(home: &NsSet) -> Result<()> {
    for kind in SETNS_ORDER {
        if let Some(ns) = home.get(kind) {
            if Namespace::current_unchecked(kind)?.id() != ns.id() {
                sys::setns(ns, kind).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
            }
        }
    }
    Ok(())
}

/// Where a worker is, and what it was like when it was last known good.
struct State {
    profile: Profile,
    reader: FactsReader,
    facts: Facts,
    /// Whether it has a root and cwd of its own (it entered a mount
    /// namespace).
    private_fs: bool,
}

/// Gives the worker's place back if the worker unwinds (a bug in nsguard:
/// user code is contained), so that the pool's count stays right.
struct Place<'a> {
    shared: &'a Arc<Shared>,
    id: u64,
    armed: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.forget_worker(Some(self.id));
        }
    }
}

pub(crate) fn main(shared: Arc<Shared>, handle: Arc<WorkerHandle>, first: Task) {
    let me = (Arc::as_ptr(&shared) as usize, shared.generation);
    let _ = WORKER_OF.try_with(|w| w.set(me));
    let mut place = Place {
        shared: &shared,
        id: handle.id,
        armed: true,
    };
    let mut state = match start(&shared) {
        Ok(state) => state,
        Err(err) => {
            crate::trace::event!(tracing::Level::WARN, error = %err, "a new worker could not start");
            first.finish(Some(err));
            return; // `place` gives the place back
        }
    };
    crate::trace::event!(
        tracing::Level::DEBUG,
        worker = nix::unistd::gettid().as_raw(),
        "worker started"
    );
    shared.relocate(handle.id, state.profile);
    let mut next = Some(Msg::Task(first));
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match shared.next_msg(&handle) {
                Some(msg) => msg,
                None => {
                    place.armed = false; // idle too long; already off the pool
                    crate::trace::event!(tracing::Level::DEBUG, "idle worker exits");
                    return;
                }
            },
        };
        let after_call = match msg {
            Msg::Task(task) => {
                if let Err(why) = serve(&shared, &mut state, task, handle.id) {
                    retire(&shared, why);
                    return; // `place` gives the place back
                }
                true
            }
            Msg::GoHome => false,
            Msg::Exit => {
                place.armed = false; // the sender accounted for it
                return;
            }
        };
        let mut after = shared.make_idle(&handle, state.profile, after_call);
        if let AfterCall::GoHome = after {
            if go_home(&shared, &mut state).is_err() {
                retire(&shared, Retirement::CannotGoHome);
                return;
            }
            shared.relocate(handle.id, state.profile);
            after = shared.make_idle(&handle, state.profile, false);
        }
        match after {
            AfterCall::Wait | AfterCall::GoHome => {}
            AfterCall::Serve(task) => next = Some(Msg::Task(task)),
            AfterCall::Exit => {
                place.armed = false;
                return;
            }
        }
    }
}

/// A new worker settles in the executor's home (it starts where the origin
/// thread is) and records what it is like.
fn start(shared: &Shared) -> Result<State> {
    settle_in(&shared.home)?;
    let profile = Profile::of_current_thread()?;
    if profile != shared.home_profile {
        return Err(Error::Worker {
            reason: "a new worker did not reach the executor's home namespaces".into(),
        });
    }
    let io = |errno| Error::Io {
        op: "reading the worker's status",
        kind: NsKind::User,
        path: Some("/proc/thread-self/status".into()),
        errno,
    };
    let mut reader = FactsReader::new(shared.origin.tid).map_err(io)?;
    let facts = reader.read(false).map_err(io)?;
    Ok(State {
        profile,
        reader,
        facts,
        private_fs: false,
    })
}

/// A worker that is never reused: counted, and reported with the reason.
fn retire(shared: &Shared, why: Retirement) {
    shared.counters.retire(why);
    crate::trace::event!(
        tracing::Level::WARN,
        worker = nix::unistd::gettid().as_raw(),
        reason = why.describe(),
        "worker retired"
    );
}

/// Runs one task. `Ok` if the worker may be used again: its namespaces and
/// per-thread facts are exactly what `state` says, no guard is left on it,
/// and it is not poisoned.
fn serve(shared: &Shared, state: &mut State, task: Task, id: u64) -> Result<(), Retirement> {
    let before = state.profile;
    let switched = switch(shared, state, &task.target(), &task.desired);
    if state.profile != before {
        shared.relocate(id, state.profile);
    }
    if let Err(err) = switched {
        crate::trace::event!(tracing::Level::WARN, error = %err, "a worker could not switch");
        task.finish(Some(err));
        // Retire it: the failure may lie in the worker itself (a body may
        // have dropped its capabilities, which are per thread), and a fresh
        // worker costs one thread start.
        return Err(Retirement::SwitchFailed);
    }
    Counters::add(&shared.counters.calls, 1);
    task.finish(None);
    // The result is with the caller; check the thread off its latency path.
    if thread_state::depth() != 0 || thread_state::is_poisoned() {
        return Err(Retirement::GuardOrPoison);
    }
    if shared.config.check_after_call {
        check_unchanged(state)?;
    }
    Ok(())
}

/// The exact check after a call: the body may have called setns/unshare,
/// changed its credentials, capabilities, securebits, `no_new_privs`,
/// seccomp filters, or (on a worker with a private fs context) its root,
/// cwd or umask.
fn check_unchanged(state: &mut State) -> Result<(), Retirement> {
    match state.reader.unchanged(&state.facts, state.private_fs) {
        Ok(true) => {}
        Ok(false) => {
            #[cfg(feature = "tracing")]
            if let Ok(now) = state.reader.read(state.private_fs) {
                crate::trace::event!(
                    tracing::Level::WARN,
                    changed = %state.facts.describe_change(&now),
                    "a body changed its worker's thread state"
                );
            }
            return Err(Retirement::ThreadStateChanged);
        }
        Err(_) => return Err(Retirement::ThreadStateChanged),
    }
    if !state.profile.matches_current_thread().unwrap_or(false) {
        return Err(Retirement::NamespacesChanged);
    }
    Ok(())
}

/// Switches the worker to `desired`: one `setns` per kind that differs.
fn switch(
    shared: &Shared,
    state: &mut State,
    target: &Target<'_>,
    desired: &Profile,
) -> Result<()> {
    // Time is tracked but never switched: no call can ask for another one.
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
        Counters::add(&shared.counters.switches, 1);
        crate::trace::event!(
            tracing::Level::TRACE,
            kind = %kind,
            from = state.profile.get(kind),
            to = %ns.id(),
            "worker switched"
        );
        state.profile.set(ns.id());
        if kind == NsKind::Mnt {
            // Root, cwd and umask are the worker's own from now on: they
            // become part of what a body must leave as it found it.
            state.private_fs = true;
            state.facts = state.reader.read(true).map_err(|errno| Error::Io {
                op: "reading the worker's status after entering",
                kind,
                path: ns.path().map(Into::into),
                errno,
            })?;
        }
    }
    Ok(())
}

/// Switches back to the home namespaces; fails for a worker that left home
/// for a one-way kind (it must exit instead).
fn go_home(shared: &Shared, state: &mut State) -> Result<()> {
    let home = shared.home_profile;
    for kind in tracked() {
        if state.profile.get(kind) == home.get(kind) {
            continue;
        }
        if shared.one_way.contains(kind) {
            return Err(Error::Worker {
                reason: format!("this worker cannot return to its home {kind} namespace"),
            });
        }
        let Some(ns) = shared.home.get(kind) else {
            return Err(Error::Worker {
                reason: format!("no home {kind} namespace"),
            });
        };
        sys::setns(ns, kind).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
        Counters::add(&shared.counters.switches, 1);
        state.profile.set(ns.id());
    }
    Ok(())
}
