//! A worker thread: switches to what each call wants, runs it, checks that
//! the call left the thread as it was, and waits for the next one.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result, WorkerCause};
use crate::executor::mailbox::{Mailbox, Msg};
use crate::executor::scheduler::{AfterCall, Scheduler};
use crate::executor::set_ref::SetRef;
use crate::executor::stats::{Counters, Retirement};
use crate::executor::task::Task;
use crate::kind::NsKind;
use crate::sync::thread;
use crate::sync::time::Instant;
use crate::sys;
use crate::thread::census;
use crate::thread::facts::{Facts, FactsReader};
use crate::thread::location::{tracked, Location};
use crate::thread::marks;
use crate::thread::owners::{role_of, Owned, Role};
use crate::thread::slice::Slice;

/// Where a worker is, and what it was like when it was last known good.
struct State {
    location: Location,
    reader: FactsReader,
    facts: Facts,
    /// Whether it has a root and cwd of its own (it entered a mount
    /// namespace).
    private_fs: bool,
    /// The process's thread count at the last check: when it grew, a body
    /// may have started threads inside.
    threads: Option<u32>,
    /// The threads its census has read (each is read once).
    seen: census::Seen,
    /// Its time slice: short while it waits for a sporadic caller.
    slice: Slice,
    /// Counts this thread among nsguard's own (for the census).
    _owned: Owned,
}

/// A worker's place among the executor's live workers: given back when the
/// worker exits on its own (retired, or failed to start), or unwinds (a bug
/// in nsguard: user code is contained), so that the count stays right.
/// Disarmed where the exit was already accounted for.
struct WorkerSlot<'a> {
    scheduler: &'a Arc<Scheduler>,
    id: u64,
    armed: bool,
    /// Whether the worker is counted as finishing a call
    /// ([`Scheduler::ran`]).
    finishing: Cell<bool>,
}

impl Drop for WorkerSlot<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.scheduler
                .forget_worker(Some(self.id), self.finishing.get());
        }
    }
}

/// What a worker's life needs of its thread: where it is, serving a task
/// there, going home. [`State`] does it with system calls; the loom models
/// of the executor (`executor/models/`) with none.
pub(crate) trait WorkerThread {
    /// Where the thread is.
    fn location(&self) -> Location;
    /// Runs one task (see [`serve`]), and calls `ran` once the body has
    /// run (or the task was refused), before its caller is released.
    fn serve(
        &mut self,
        scheduler: &Scheduler,
        task: Task,
        id: u64,
        parked: bool,
        ran: &impl Fn(),
    ) -> Result<(), Retirement>;
    /// Switches back to the home namespaces (see [`go_home`]).
    fn go_home(&mut self, scheduler: &Scheduler) -> Result<()>;
    /// Readies the thread to wait for a caller that calls now and then
    /// (`sporadic`, while `alone` says no other worker is busy: a short
    /// time slice, see `thread/slice.rs`) or for other calls (its own
    /// slice). `Err` if the worker can no longer tell its state.
    fn expect_sporadic(
        &mut self,
        _sporadic: bool,
        _alone: impl FnOnce() -> bool,
    ) -> Result<(), Retirement> {
        Ok(())
    }
}

impl WorkerThread for State {
    fn location(&self) -> Location {
        self.location
    }

    fn serve(
        &mut self,
        scheduler: &Scheduler,
        task: Task,
        id: u64,
        parked: bool,
        ran: &impl Fn(),
    ) -> Result<(), Retirement> {
        serve(scheduler, self, task, id, parked, ran)
    }

    fn go_home(&mut self, scheduler: &Scheduler) -> Result<()> {
        go_home(scheduler, self)
    }

    fn expect_sporadic(
        &mut self,
        sporadic: bool,
        alone: impl FnOnce() -> bool,
    ) -> Result<(), Retirement> {
        // `alone` takes the books' lock: asked only where a slice applies.
        let sporadic = sporadic && self.slice.applies() && alone();
        if sporadic == self.slice.is_short() {
            return Ok(());
        }
        let changed = if sporadic {
            // Best effort: a kernel or filter that refuses it leaves the
            // default slice, and the caller yields instead.
            self.slice.shorten().unwrap_or(false)
        } else {
            self.slice
                .restore()
                .map_err(|_| Retirement::ThreadStateChanged)?;
            true
        };
        if changed {
            // The check compares the thread's scheduling with the facts.
            self.facts
                .reread_sched()
                .map_err(|_| Retirement::ThreadStateChanged)?;
        }
        Ok(())
    }
}

/// A worker thread's life: serve `first`, then every message until it is
/// told to exit (idle past the timeout, replaced, or shut down), or must be
/// retired.
pub(crate) fn main(scheduler: Arc<Scheduler>, handle: Arc<Mailbox>, first: Task) {
    life(&scheduler, &handle, first, start);
}

/// [`main`], on a thread that `start` settles in the executor's home.
pub(crate) fn life<W: WorkerThread>(
    scheduler: &Arc<Scheduler>,
    handle: &Arc<Mailbox>,
    first: Task,
    start: impl FnOnce(&Scheduler) -> Result<W>,
) {
    let mut place = WorkerSlot {
        scheduler,
        id: handle.id,
        armed: true,
        finishing: Cell::new(false),
    };
    let mut state = match start(scheduler) {
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
    scheduler.relocate(handle.id, state.location());
    let mut next = Some(Msg::Task(first));
    // How long to spin for the next message before parking: the configured
    // budget while messages come within it, none once one did not (a
    // caller that calls now and then would only burn it).
    let budget = scheduler.config.spin;
    let mut spin = budget;
    let mut idle_since = Instant::now();
    // Whether the worker waits for a caller that calls now and then: set
    // by a message after a gap of `SPORADIC` or more, cleared by
    // `CLOSE_CALLS` messages in a row after shorter gaps. (A caller's gaps
    // can swing both ways from call to call: it changes seldom.)
    let mut sporadic = false;
    let mut close_calls: u32 = 0;
    loop {
        // Whether this worker parked a while waiting for the message.
        let (msg, parked) = match next.take() {
            Some(msg) => (msg, false),
            None => {
                let (msg, parked) = scheduler.next_msg(handle, spin);
                let gap = idle_since.elapsed();
                spin = if gap <= budget {
                    budget
                } else {
                    Duration::ZERO
                };
                close_calls = if gap < SPORADIC {
                    close_calls.saturating_add(1)
                } else {
                    0
                };
                if gap >= SPORADIC {
                    sporadic = true;
                } else if close_calls >= CLOSE_CALLS {
                    sporadic = false;
                }
                // Only a caller that calls now and then is yielded to:
                // under load, workers park briefly and often, and a
                // yield there only adds switches.
                (msg, parked && gap >= SPORADIC)
            }
        };
        let after_call = match msg {
            Msg::Task(task) => {
                // Counted as finishing from before the caller has its
                // result until `make_idle` below (or its exit).
                let ran = || {
                    scheduler.ran();
                    place.finishing.set(true);
                };
                if let Err(why) = state.serve(scheduler, task, handle.id, parked, &ran) {
                    retire(scheduler, why);
                    return; // `place` gives the place back
                }
                // Off the caller's path: ready the thread for the next call.
                // A short slice only while no other worker is busy: under
                // load, a woken worker that preempts whoever runs costs more
                // switches than it saves.
                let alone = || {
                    let (workers, idle, _) = scheduler.counts();
                    workers.saturating_sub(idle) <= 1
                };
                if let Err(why) = state.expect_sporadic(sporadic, alone) {
                    retire(scheduler, why);
                    return;
                }
                true
            }
            Msg::GoHome => false,
            Msg::Exit => {
                // Idle too long, replaced, or shut down: the sender
                // accounted for it.
                place.armed = false;
                crate::trace::event!(tracing::Level::DEBUG, "worker exits");
                return;
            }
        };
        let finishing = place.finishing.get();
        idle_since = Instant::now();
        let mut after =
            scheduler.make_idle(handle, state.location(), after_call, finishing, idle_since);
        if let AfterCall::GoHome = after {
            if state.go_home(scheduler).is_err() {
                retire(scheduler, Retirement::CannotGoHome);
                return; // `place` gives the place back, and the count
            }
            scheduler.relocate(handle.id, state.location());
            after = scheduler.make_idle(handle, state.location(), false, finishing, Instant::now());
        }
        place.finishing.set(false);
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

/// An idle gap from which a caller counts as sporadic: its worker yields
/// to it after handing back the result (see `serve`), and waits for it
/// with a short time slice (`thread/slice.rs`).
const SPORADIC: Duration = Duration::from_micros(100);

/// How many messages in a row after gaps under [`SPORADIC`] make a worker
/// that waited for a sporadic caller take its own time slice again.
const CLOSE_CALLS: u32 = 8;

/// A new worker settles in the executor's home (it starts where the origin
/// thread is) and records what it is like.
fn start(scheduler: &Scheduler) -> Result<State> {
    scheduler.home.move_current_thread_in()?;
    let location = Location::of_current_thread()?;
    if location != scheduler.home_location {
        return Err(Error::Worker {
            cause: WorkerCause::CannotReachHome,
            reason: "a new worker did not reach the executor's home namespaces".into(),
        });
    }
    let io = |errno| Error::Io {
        op: "reading the worker's status",
        kind: None,
        path: Some("/proc/thread-self/status".into()),
        errno,
    };
    let mut reader = FactsReader::new(scheduler.origin.tid).map_err(io)?;
    let facts = reader.read(false).map_err(io)?;
    Ok(State {
        location,
        threads: reader.threads(),
        seen: census::Seen::of_threads_there(),
        reader,
        facts,
        private_fs: false,
        slice: Slice::of_current_thread().map_err(io)?,
        _owned: Owned::register(Role::Worker),
    })
}

/// A worker that is never reused: counted, and reported with the reason.
fn retire(scheduler: &Scheduler, why: Retirement) {
    scheduler.counters.retire(why);
    crate::trace::event!(
        tracing::Level::WARN,
        worker = nix::unistd::gettid().as_raw(),
        reason = why.describe(),
        "worker retired"
    );
}

/// Runs one task, calling `ran` once its body has run (or the task was
/// refused), before its caller is released. `Ok` if the worker may be used
/// again: its namespaces and per-thread facts are exactly what `state`
/// says, no guard is left on it, and it is not poisoned.
fn serve(
    scheduler: &Scheduler,
    state: &mut State,
    task: Task,
    id: u64,
    parked: bool,
    ran: &impl Fn(),
) -> Result<(), Retirement> {
    let before = state.location;
    let task_location = task.desired;
    let switched = switch(scheduler, state, &task.target(), &task.desired);
    if state.location != before {
        scheduler.relocate(id, state.location);
    }
    if let Err(err) = switched {
        crate::trace::event!(tracing::Level::WARN, error = %err, "a worker could not switch");
        task.finish_then(Some(err), ran);
        // Retire it: the failure may lie in the worker itself (a body may
        // have dropped its capabilities, which are per thread), and a fresh
        // worker costs one thread start.
        return Err(Retirement::SwitchFailed);
    }
    Counters::add(&scheduler.counters.calls, 1);
    task.finish_then(None, ran);
    if parked && scheduler.config.check_after_call {
        // This worker was parked a while, so its caller most likely parked
        // too and was just woken, on this CPU (a woken thread lands where
        // its waker runs). Let it run before the check's tens of
        // microseconds: it sees its result at once instead of after the
        // check. A worker that was spinning (back-to-back calls) does not
        // yield.
        thread::yield_now();
    }
    // The result is with the caller; check the thread off its latency path.
    if marks::depth() != 0 || marks::is_poisoned() {
        return Err(Retirement::GuardOrPoison);
    }
    if scheduler.config.check_after_call {
        check_unchanged(state)?;
        let threads = state.reader.threads();
        if threads > state.threads {
            report_threads_left_inside(scheduler, &mut state.seen, &task_location);
        }
        state.threads = threads;
    }
    Ok(())
}

/// The process has more threads than at the worker's last check: reports
/// every thread this worker's census has not seen before that is not
/// nsguard's and is in a namespace of this call that is not home, once (a
/// tracing event, and `Stats`). Such a thread was started inside by a body
/// (a thread starts where the thread that started it is), and stays there.
/// Threads seen before are not read again: a thread that was elsewhere when
/// seen moves only by switching itself, which is no body's doing.
fn report_threads_left_inside(scheduler: &Scheduler, seen: &mut census::Seen, call: &Location) {
    let home = &scheduler.home_location;
    let Ok((tasks, alive)) = seen.new_tasks() else {
        return;
    };
    let inside: Vec<_> = tasks
        .into_iter()
        .filter(|t| role_of(t.tid, t.start).is_none())
        .filter(|t| {
            tracked().any(|k| {
                let ino = t.location.get(k);
                ino == call.get(k) && ino != home.get(k)
            })
        })
        .filter(|t| !is_set_runtime_thread(t))
        .collect();
    let new = scheduler.note_threads_inside(&alive, inside.iter().map(|t| t.tid));
    for task in inside.iter().filter(|t| new.contains(&t.tid)) {
        crate::trace::event!(
            tracing::Level::WARN,
            tid = task.tid,
            name = %task.name,
            namespaces = %task.location.differing(home),
            "a body left a thread inside its namespaces; it stays there"
        );
        #[cfg(not(feature = "tracing"))]
        let _ = task;
    }
    Counters::add(&scheduler.counters.threads_left_inside, new.len() as u64);
}

/// Whether `task` is a blocking thread of a set runtime (feature `tokio`)
/// that the body's `spawn_blocking` started: such a thread counts itself
/// as nsguard's when it starts, which may be just after this check looks.
/// Until it runs, a new thread has its creator's name; the check gives it
/// a moment to run and settle.
#[cfg(feature = "tokio")]
fn is_set_runtime_thread(task: &census::Task) -> bool {
    use crate::executor::scheduler::WORKER_NAME;
    use crate::executor::set_runtime::THREAD_NAME;
    let comm = format!("/proc/self/task/{}/comm", task.tid);
    let mut name = task.name.clone();
    for _ in 0..1000 {
        if name != WORKER_NAME {
            break;
        }
        std::thread::yield_now();
        if role_of(task.tid, task.start).is_some() {
            return true;
        }
        name = std::fs::read_to_string(&comm)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default();
    }
    name == THREAD_NAME || role_of(task.tid, task.start).is_some()
}

#[cfg(not(feature = "tokio"))]
fn is_set_runtime_thread(_: &census::Task) -> bool {
    false
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
    if !state.location.matches_current_thread().unwrap_or(false) {
        return Err(Retirement::NamespacesChanged);
    }
    Ok(())
}

/// Switches the worker to `desired`: one `setns` per kind that differs.
#[inline]
fn switch(
    scheduler: &Scheduler,
    state: &mut State,
    target: &SetRef<'_>,
    desired: &Location,
) -> Result<()> {
    // The common case, a worker already there, without a look per kind
    // (and without a call: the rest is out of line).
    if state.location == *desired {
        return Ok(());
    }
    switch_kinds(scheduler, state, target, desired)
}

/// [`switch`] for a worker that is not there yet.
#[inline(never)]
fn switch_kinds(
    scheduler: &Scheduler,
    state: &mut State,
    target: &SetRef<'_>,
    desired: &Location,
) -> Result<()> {
    // Time is tracked but never switched: no call can ask for another one.
    for kind in tracked().filter(|k| *k != NsKind::Time) {
        if state.location.get(kind) == desired.get(kind) {
            continue;
        }
        let Some(ns) = target.get(kind).or_else(|| scheduler.home.get(kind)) else {
            return Err(Error::Worker {
                cause: WorkerCause::CannotReachHome,
                reason: format!("no way back to the home {kind} namespace on this worker"),
            });
        };
        if kind == NsKind::Mnt {
            // A thread shares root and cwd with the process until it does
            // this, and setns(CLONE_NEWNS) refuses it before. It cannot be
            // undone: from now on the worker serves this mount namespace.
            sys::unshare_fs().map_err(|errno| Error::Io {
                op: "unshare(CLONE_FS) before entering",
                kind: Some(kind),
                path: ns.path().map(Into::into),
                errno,
            })?;
        }
        sys::setns(ns, kind).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
        Counters::add(&scheduler.counters.switches, 1);
        crate::trace::event!(
            tracing::Level::TRACE,
            kind = %kind,
            from = state.location.get(kind),
            to = %ns.id(),
            "worker switched"
        );
        state.location.set(ns.id());
        if kind == NsKind::Mnt {
            // Root, cwd and umask are the worker's own from now on: they
            // become part of what a body must leave as it found it.
            state.private_fs = true;
            state.facts = state.reader.read(true).map_err(|errno| Error::Io {
                op: "reading the worker's status after entering",
                kind: Some(kind),
                path: ns.path().map(Into::into),
                errno,
            })?;
        }
    }
    Ok(())
}

/// Switches back to the home namespaces; fails for a worker that left home
/// for a one-way kind (it must exit instead).
fn go_home(scheduler: &Scheduler, state: &mut State) -> Result<()> {
    let home = scheduler.home_location;
    for kind in tracked() {
        if state.location.get(kind) == home.get(kind) {
            continue;
        }
        if scheduler.one_way.contains(kind) {
            return Err(Error::Worker {
                cause: WorkerCause::CannotReachHome,
                reason: format!("this worker cannot return to its home {kind} namespace"),
            });
        }
        let Some(ns) = scheduler.home.get(kind) else {
            return Err(Error::Worker {
                cause: WorkerCause::CannotReachHome,
                reason: format!("no home {kind} namespace"),
            });
        };
        sys::setns(ns, kind).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
        Counters::add(&scheduler.counters.switches, 1);
        state.location.set(ns.id());
    }
    Ok(())
}
