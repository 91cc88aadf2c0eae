//! [`Scheduler`]: the books of one executor (its idle workers, the count
//! of live ones, where each worker is, tasks queued at the cap) and the
//! decisions made on them: which worker serves a call, when one starts or
//! exits, which go home when a namespace is let go of.

use std::cell::Cell;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result, WorkerCause};
use crate::executor::config::Config;
use crate::executor::handoff::{spin_until, Handover};
use crate::executor::mailbox::{Mailbox, Msg};
use crate::executor::set_ref::SetRef;
use crate::executor::stats::{Counters, Stats};
use crate::executor::task::Task;
use crate::handle::namespace::Namespace;
use crate::handle::reentry::{can_return_to, own_user_ns};
use crate::handle::registry::is_held;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds};
use crate::process::origin::{Origin, Request};
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::thread;
use crate::sync::time::Instant;
use crate::sync::{Condvar, Mutex, MutexGuard};
use crate::sys::fork_local;
use crate::thread::location::{tracked, Location};

/// The name of every worker thread.
pub(crate) const WORKER_NAME: &str = "nsguard-worker";

/// How often idle workers are looked for at most while every worker is
/// busy: a shorter idle timeout (zero, say) ends a worker that becomes idle
/// up to this much later, rather than have the origin thread spin.
const BUSY_LOOK: Duration = Duration::from_millis(1);

/// What a new worker thread runs: installed by the executor's builder, so
/// that the books need not know the worker's code.
pub(crate) type WorkerMain = fn(Arc<Scheduler>, Arc<Mailbox>, Task);

#[cfg(not(loom))]
thread_local! {
    /// The executor (its scheduler's address and fork generation) whose
    /// worker this thread is; `(0, 0)` for other threads.
    static WORKER_OF: Cell<(usize, u64)> = const { Cell::new((0, 0)) };
}

// Loom runs every thread of a model on one OS thread: its own thread-locals.
#[cfg(loom)]
loom::thread_local! {
    static WORKER_OF: Cell<(usize, u64)> = Cell::new((0, 0));
}

/// An idle worker, as the books see it.
struct Idle {
    worker: Arc<Mailbox>,
    location: Location,
    /// When it became idle: it is ended after the idle timeout
    /// ([`Scheduler::end_idle`]).
    since: Instant,
}

/// What a worker does after a call.
pub(crate) enum AfterCall {
    /// Wait for the next message (it is idle now).
    Wait,
    /// Serve this queued task next.
    Serve(Task),
    /// Go home first: the program no longer holds a handle to a namespace
    /// it is in.
    GoHome,
    /// Exit (its place went to a new worker, or the executor shuts down).
    Exit,
}

/// The books, kept under one lock.
struct Roster {
    /// Idle workers, most recently used last.
    idle: Vec<Idle>,
    /// Owned tasks that found every worker busy at the cap, oldest first.
    pending: VecDeque<Task>,
    /// Where every live worker is (by id), busy or idle.
    located: Vec<(u64, Location)>,
    /// Live workers, busy or idle (or being started).
    total: usize,
    /// Callers waiting for a worker.
    waiting: usize,
    /// Calls finished so far: the progress the overflow rule watches.
    completed: u64,
    /// Workers started beyond the cap by the overflow rule, so far.
    overflowed: u64,
    shutdown: bool,
}

/// One executor's books and settings, shared by its handles and workers.
pub(crate) struct Scheduler {
    pub(crate) config: Config,
    /// The fork generation this executor was made in: in a forked child
    /// its threads do not exist, and its locks must not be touched.
    pub(crate) generation: u64,
    pub(crate) origin: &'static Origin,
    /// What a new worker thread runs.
    worker_main: WorkerMain,
    /// Fds of the home namespaces, to switch workers back to.
    pub(crate) home: NsSet,
    /// Where a worker at home is, for every tracked kind.
    pub(crate) home_location: Location,
    /// Kinds a worker cannot switch back to home once it has left: mnt
    /// (its fs state stays private), and any home namespace owned by a user
    /// namespace outside the process's own. A worker that left home for
    /// one of them serves that namespace only.
    pub(crate) one_way: NsKinds,
    roster: Mutex<Roster>,
    /// Signalled when a worker becomes idle or exits.
    available: Condvar,
    /// Signalled when a worker changes namespaces or exits.
    moved: Condvar,
    next_id: AtomicU64,
    /// Workers that have run a call (its caller has its result, or is
    /// about to) and are not idle yet: they check themselves, and become
    /// idle without waiting for anything. Counted before the caller is
    /// released, uncounted under the roster's lock.
    finishing: AtomicUsize,
    pub(crate) counters: Counters,
    /// Threads reported as left inside by a body, still alive.
    threads_inside: Mutex<BTreeSet<i32>>,
}

/// Locks a mutex; a poisoned one (a panic while it was held, which this
/// module's code does not do) is used as it is: its data stays consistent
/// because every critical section only moves values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the calling thread as a worker of `scheduler`'s executor.
pub(crate) fn mark_as_worker_of(scheduler: &Arc<Scheduler>) {
    let me = (Arc::as_ptr(scheduler) as usize, scheduler.generation);
    let _ = WORKER_OF.try_with(|w| w.set(me));
}

/// Whether the calling thread is a worker of `scheduler`'s executor.
#[inline]
pub(crate) fn is_worker_of(scheduler: &Arc<Scheduler>) -> bool {
    let me = (Arc::as_ptr(scheduler) as usize, scheduler.generation);
    WORKER_OF.try_with(Cell::get).is_ok_and(|w| w == me)
}

impl Scheduler {
    /// The books of a new executor whose workers live in `home` and run
    /// `worker_main`.
    pub(crate) fn new(
        config: Config,
        home: NsSet,
        origin: &'static Origin,
        worker_main: WorkerMain,
    ) -> Result<Arc<Scheduler>> {
        let home_location = origin.location.overlaid(home.iter().map(|ns| ns.id()));
        let mut one_way = NsKinds::from(NsKind::Mnt);
        for ns in &home {
            if !can_return_to(ns)? {
                one_way.insert(ns.kind());
            }
        }
        Ok(Arc::new(Scheduler {
            config,
            generation: fork_local::generation(),
            origin,
            worker_main,
            home,
            home_location,
            one_way,
            roster: Mutex::new(Roster {
                idle: Vec::new(),
                pending: VecDeque::new(),
                located: Vec::new(),
                total: 0,
                waiting: 0,
                completed: 0,
                overflowed: 0,
                shutdown: false,
            }),
            available: Condvar::new(),
            moved: Condvar::new(),
            next_id: AtomicU64::new(1),
            finishing: AtomicUsize::new(0),
            counters: Counters::default(),
            threads_inside: Mutex::new(BTreeSet::new()),
        }))
    }

    /// Whether this executor was made in the calling process (not in a
    /// parent before `fork`).
    #[inline]
    pub(crate) fn is_in_this_process(&self) -> bool {
        self.generation == fork_local::generation()
    }

    /// `Err` in a forked child: the executor's threads are the parent's.
    #[inline]
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.is_in_this_process() {
            Ok(())
        } else {
            Err(forked_error())
        }
    }

    /// Refuses a call that would need a worker to switch to a kind no
    /// thread can enter (user, time). A namespace of those kinds that the
    /// workers are in already needs no switch and is accepted, as most
    /// containers share the host's time namespace, and many its user
    /// namespace.
    #[inline]
    pub(crate) fn check_runnable(&self, target: &SetRef<'_>) -> Result<()> {
        for ns in target.iter() {
            if matches!(ns.kind(), NsKind::User | NsKind::Time) {
                self.check_enterable(ns)?;
            }
        }
        Ok(())
    }

    /// [`check_runnable`](Self::check_runnable) for a namespace of a kind
    /// no thread can enter.
    #[inline(never)]
    fn check_enterable(&self, ns: &Namespace) -> Result<()> {
        let kind = ns.kind();
        let own = match kind {
            NsKind::User => own_user_ns()?.ino(),
            NsKind::Time => self.home_location.get(NsKind::Time),
            _ => return Ok(()),
        };
        if ns.id().ino() == own {
            return Ok(());
        }
        crate::trace::event!(
            tracing::Level::DEBUG,
            namespace = %ns.id(),
            "refused: no thread can enter another {kind} namespace"
        );
        let (reason, instead) = kind.thread_refusal().unwrap_or(("", ""));
        Err(Error::UnsupportedOnThread {
            kind,
            reason,
            instead,
        })
    }

    /// Gives `task` to a worker: an idle one already there, else an idle
    /// one that can switch, else a new one, else waits.
    ///
    /// A blocking call made on one of this executor's own workers may start
    /// a worker beyond the cap: its worker waits for it, so it lends it its
    /// place; unless a worker has run its call and is checking itself (it
    /// is idle in a moment): the call waits for it. An owned call
    /// (`run_async`) made on one of them may too while fewer than
    /// `max_overflow` workers are beyond the cap: the body may wait for its
    /// future (its worker then serves nothing else), but it need not, and a
    /// body that submits many at once must not start as many threads. A blocking call that has waited at the cap for
    /// `overflow_after` while no call finished gets a worker beyond the cap
    /// too, within the same bound: the busy workers may be waiting for it (a
    /// body that waits for a thread of its own that calls into this
    /// executor). Other owned tasks wait in the queue; they never block
    /// their submitter. Says whether the worker that took the task was
    /// parked (and is being woken).
    ///
    /// The common case, an idle worker that can take the call, is inlined
    /// into the caller's own `run`: after an idle gap every code page a
    /// call runs on costs a TLB miss and cache misses of its own (README,
    /// "Code pages"). The rest is [`dispatch_further`](Self::dispatch_further).
    #[inline(always)]
    pub(crate) fn dispatch(self: &Arc<Self>, task: Task) -> Handover {
        let roster = lock(&self.roster);
        if !roster.shutdown {
            if let Some(i) = self.pick(&roster, &task.desired) {
                return self.hand_to_idle(roster, i, task);
            }
        }
        self.dispatch_further(roster, task)
    }

    /// Which idle worker should take a call for `desired`, if any can.
    ///
    /// A worker can switch any kind but the one-way ones: once it left home
    /// for one of those it serves that namespace only. First an awake idle
    /// worker (spinning for its next call, or about to wait) already there;
    /// then an awake one that only has to switch kinds that go both ways,
    /// before a parked one already there: a `setns` costs about 1.5 µs a
    /// kind here, waking a parked thread 5-10 µs. So a caller that goes
    /// round several namespaces back to back keeps meeting the worker that
    /// just finished, as a caller of one namespace does. Among equals, the
    /// most recently idle.
    #[inline(always)]
    fn pick(&self, roster: &Roster, desired: &Location) -> Option<usize> {
        let one_way = self.one_way;
        // Already where the call needs it for every one-way kind.
        let settled = |w: &Location| one_way.iter().all(|k| w.get(k) == desired.get(k));
        // Can get there: for each one-way kind, already there or still home.
        let able = |w: &Location| self.can_serve(w, desired);
        let awake_at = |fits: &dyn Fn(&Location) -> bool| {
            roster
                .idle
                .iter()
                .rposition(|w| !w.worker.is_parked() && fits(&w.location))
        };
        let exact = || roster.idle.iter().rposition(|w| w.location == *desired);
        let same = || roster.idle.iter().rposition(|w| settled(&w.location));
        let fresh = || roster.idle.iter().rposition(|w| able(&w.location));
        awake_at(&|w| w == desired)
            .or_else(|| awake_at(&settled))
            .or_else(exact)
            .or_else(same)
            .or_else(fresh)
    }

    /// Gives `task` to the idle worker at `i` of the roster.
    #[inline(always)]
    fn hand_to_idle(&self, mut roster: MutexGuard<'_, Roster>, i: usize, task: Task) -> Handover {
        // Most often the most recently idle, the last: taken without a
        // move of the others, which would call `memmove`.
        let idle = if i + 1 == roster.idle.len() {
            roster.idle.swap_remove(i)
        } else {
            roster.idle.remove(i)
        };
        drop(roster);
        let handover = idle.worker.send(Msg::Task(task));
        if handover == Handover::Woken {
            Counters::add(&self.counters.woken, 1);
        }
        handover
    }

    /// [`dispatch`](Self::dispatch) when no idle worker could take the
    /// call at first sight: shut down, a new worker, a worker replaced,
    /// the queue, or a wait at the cap (after which an idle worker may
    /// take it after all).
    #[inline(never)]
    fn dispatch_further(
        self: &Arc<Self>,
        mut roster: MutexGuard<'_, Roster>,
        task: Task,
    ) -> Handover {
        let nested = is_worker_of(self);
        let mut watch: Option<(u64, Instant)> = None;
        loop {
            if roster.shutdown {
                drop(roster);
                task.finish(Some(shut_down_error()));
                return Handover::Other;
            }
            if let Some(i) = self.pick(&roster, &task.desired) {
                return self.hand_to_idle(roster, i, task);
            }
            let room = roster.total < self.config.max_workers + self.config.max_overflow;
            // A worker that has run its call is idle in a moment, whatever
            // the bodies do: a nested call waits for it, as a call at the
            // cap does, rather than start a worker beyond the cap. (Were it
            // to start one, a check slower than the calls come, on a loaded
            // or emulated machine, would start one per nested call.)
            let finishing = self.finishing.load(Ordering::Acquire) > 0;
            let beyond = nested && !finishing && (!task.is_owned() || room);
            if roster.total < self.config.max_workers || beyond {
                if roster.total >= self.config.max_workers {
                    Counters::add(&self.counters.nested_beyond_cap, 1);
                }
                roster.total += 1;
                drop(roster);
                self.spawn(task);
                return Handover::Other;
            }
            // At the cap, with idle workers that cannot serve this call
            // (dedicated to other one-way namespaces): replace one. It is
            // gone from the books at once (its place goes to the new one).
            if !roster.idle.is_empty() {
                let idle = roster.idle.remove(0);
                remove_located(&mut roster, idle.worker.id);
                self.moved.notify_all();
                drop(roster);
                idle.worker.send(Msg::Exit);
                self.spawn(task);
                return Handover::Other;
            }
            // An owned task never blocks its submitter: it waits in the queue
            // for the next worker that frees up.
            if task.is_owned() {
                roster.pending.push_back(task);
                return Handover::Other;
            }
            let now = Instant::now();
            if watch.is_none() {
                Counters::add(&self.counters.waits_at_cap, 1);
                crate::trace::event!(
                    tracing::Level::DEBUG,
                    max_workers = self.config.max_workers,
                    "every worker is busy at the cap: the call waits"
                );
            }
            let (seen, since) = *watch.get_or_insert((roster.completed, now));
            if roster.completed != seen {
                watch = Some((roster.completed, now));
            } else if room && now.duration_since(since) >= self.config.overflow_after {
                roster.total += 1;
                roster.overflowed += 1;
                crate::trace::event!(
                    tracing::Level::WARN,
                    workers = roster.total,
                    max_workers = self.config.max_workers,
                    "no call finished while this one waited at the cap: starting a worker \
                     beyond it"
                );
                drop(roster);
                self.spawn(task);
                return Handover::Other;
            }
            let since = watch.map_or(now, |(_, since)| since);
            // Without room beyond the cap, wait for a worker to free up
            // (looking again now and then).
            let left = if room {
                self.config
                    .overflow_after
                    .saturating_sub(now.duration_since(since))
            } else {
                self.config.overflow_after
            };
            roster.waiting += 1;
            roster = self
                .available
                .wait_timeout(roster, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            roster.waiting -= 1;
        }
    }

    /// Asks the origin for a new worker that serves `task` first. The
    /// worker's place is already counted in `total`.
    fn spawn(self: &Arc<Self>, task: Task) {
        // The task travels through a slot so that it never sits in a
        // closure the origin might drop: if the thread cannot be created,
        // the task is failed with the real reason.
        let slot = Arc::new(Mutex::new(Some(task)));
        let for_worker = Arc::clone(&slot);
        let scheduler = Arc::clone(self);
        let on_failure = Arc::clone(self);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let worker_main = self.worker_main;
        self.origin.spawn(Request {
            name: WORKER_NAME,
            start: Box::new(move || {
                let first = lock(&for_worker).take();
                if let Some(first) = first {
                    mark_as_worker_of(&scheduler);
                    let mailbox = Arc::new(Mailbox::for_current_thread(id));
                    worker_main(scheduler, mailbox, first);
                }
            }),
            failed: Box::new(move |err| {
                on_failure.forget_worker(None, false);
                let task = lock(&slot).take();
                if let Some(task) = task {
                    task.finish(Some(err));
                }
            }),
        });
    }

    /// Whether a worker at `w` may serve a call that wants `desired`: for
    /// every one-way kind it is already there or still home.
    fn can_serve(&self, w: &Location, desired: &Location) -> bool {
        let home = &self.home_location;
        self.one_way
            .iter()
            .all(|k| w.get(k) == desired.get(k) || w.get(k) == home.get(k))
    }

    /// Whether the program still holds a handle to every namespace a
    /// worker at `w` is in away from home.
    fn is_pinned(&self, w: &Location) -> bool {
        tracked()
            .filter(|k| w.get(*k) != self.home_location.get(*k))
            .all(|k| is_held(w.get(k)))
    }

    /// A worker is done with its task: it takes a queued task it can serve,
    /// or gives its place to a new worker for a queued task it cannot, or
    /// goes home if the program let go of where it is, or becomes idle.
    /// `finishing`: it is counted as finishing a call ([`Scheduler::ran`]);
    /// it stays counted while it goes home (it is idle in a moment then
    /// too), and is uncounted otherwise. `now`: when it becomes idle, from
    /// which its idle timeout counts ([`Scheduler::end_idle`]).
    pub(crate) fn make_idle(
        self: &Arc<Self>,
        worker: &Arc<Mailbox>,
        location: Location,
        after_call: bool,
        finishing: bool,
        now: Instant,
    ) -> AfterCall {
        let mut roster = lock(&self.roster);
        if after_call {
            roster.completed += 1;
        }
        // A nested call that waits for a worker to finish looks again, even
        // if another waiter takes this one.
        let finished = |roster: &Roster| {
            if finishing {
                self.finishing.fetch_sub(1, Ordering::AcqRel);
                if roster.waiting > 0 {
                    self.available.notify_all();
                }
            }
        };
        if roster.shutdown {
            finished(&roster);
            roster.total -= 1;
            remove_located(&mut roster, worker.id);
            self.moved.notify_all();
            self.available.notify_all();
            return AfterCall::Exit;
        }
        if let Some(i) = roster
            .pending
            .iter()
            .position(|task| self.can_serve(&location, &task.desired))
        {
            if let Some(task) = roster.pending.remove(i) {
                finished(&roster);
                return AfterCall::Serve(task);
            }
        }
        if let Some(task) = roster.pending.pop_front() {
            finished(&roster);
            remove_located(&mut roster, worker.id);
            self.moved.notify_all();
            drop(roster);
            self.spawn(task); // this worker's place goes to the new one
            return AfterCall::Exit;
        }
        if location != self.home_location && !self.is_pinned(&location) {
            Counters::add(&self.counters.evictions, 1);
            return AfterCall::GoHome;
        }
        roster.idle.push(Idle {
            worker: Arc::clone(worker),
            location,
            since: now,
        });
        finished(&roster); // wakes every waiter, if it was finishing
        if roster.waiting > 0 && !finishing {
            self.available.notify_one();
        }
        AfterCall::Wait
    }

    /// A worker has run a call (or refused it) and is about to release its
    /// caller: it is finishing until [`Scheduler::make_idle`] takes it off
    /// the count, or [`Scheduler::forget_worker`] if it exits instead.
    pub(crate) fn ran(&self) {
        self.finishing.fetch_add(1, Ordering::AcqRel);
    }

    /// Records where worker `id` is now.
    pub(crate) fn relocate(&self, id: u64, location: Location) {
        let mut roster = lock(&self.roster);
        match roster.located.iter_mut().find(|(w, _)| *w == id) {
            Some(entry) => entry.1 = location,
            None => roster.located.push((id, location)),
        }
        self.moved.notify_all();
    }

    /// A worker exits of its own accord (retired, or failed to start): its
    /// place goes to a queued task, if any. `id` is `None` for a worker
    /// that never started; `finishing` says whether it was counted as
    /// finishing a call (see [`Scheduler::ran`]).
    pub(crate) fn forget_worker(self: &Arc<Self>, id: Option<u64>, finishing: bool) {
        let mut roster = lock(&self.roster);
        roster.completed += 1;
        if finishing {
            self.finishing.fetch_sub(1, Ordering::AcqRel);
            if roster.waiting > 0 {
                self.available.notify_all();
            }
        }
        if let Some(id) = id {
            remove_located(&mut roster, id);
            self.moved.notify_all();
        }
        if !roster.shutdown {
            if let Some(task) = roster.pending.pop_front() {
                drop(roster);
                self.spawn(task);
                return;
            }
        }
        roster.total -= 1;
        if roster.waiting > 0 {
            self.available.notify_one();
        }
    }

    /// Waits for the worker's next message: spins for `spin` first, then
    /// parks. Says whether it parked. An idle worker is ended by a message
    /// too (`Msg::Exit`, from [`Scheduler::end_idle`]): it waits with no
    /// timer of its own, which would cost every call that wakes it.
    #[inline]
    pub(crate) fn next_msg(&self, worker: &Arc<Mailbox>, spin: Duration) -> (Msg, bool) {
        // The last caller ran on this CPU: it waits for it now (for its
        // result, or to make its next call), and would wait for the whole
        // spin. (A worker that does not spin parks, which lets it run.)
        if worker.begin_waiting() && !spin.is_zero() {
            thread::yield_now();
        }
        spin_until(|| worker.is_ready(), spin);
        let mut parked = false;
        loop {
            if worker.is_ready() {
                if let Some(msg) = worker.take() {
                    return (msg, parked);
                }
            }
            parked = true;
            worker.park();
        }
    }

    /// Ends the workers idle for the idle timeout as of `now` (they are
    /// off the books at once, and told to exit), and says when to look
    /// again: at the next idle worker's deadline, one idle timeout (at
    /// least [`BUSY_LOOK`]) from now if every worker is busy, and never if
    /// there is no worker (a new one is started through the origin thread,
    /// which calls this then).
    pub(crate) fn end_idle(&self, now: Instant) -> Option<Instant> {
        let timeout = self.config.idle_timeout;
        let due = |w: &Idle| w.since.checked_add(timeout);
        let (ended, next) = {
            let mut roster = lock(&self.roster);
            let (ended, kept): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut roster.idle)
                .into_iter()
                .partition(|w| due(w).is_some_and(|at| at <= now));
            roster.idle = kept;
            for w in &ended {
                roster.total -= 1;
                remove_located(&mut roster, w.worker.id);
                // Its place goes to a call waiting at the cap.
                if roster.waiting > 0 {
                    self.available.notify_one();
                }
            }
            if !ended.is_empty() {
                self.moved.notify_all();
            }
            let next = match roster.idle.iter().filter_map(due).min() {
                Some(at) => Some(at),
                None if roster.total > 0 => now.checked_add(timeout.max(BUSY_LOOK)),
                None => None,
            };
            (ended, next)
        };
        for w in ended {
            crate::trace::event!(tracing::Level::DEBUG, "an idle worker is ended");
            w.worker.send(Msg::Exit);
        }
        next
    }

    /// Sends idle workers inside the namespace with inode `ino` home.
    pub(crate) fn evict(&self, ino: u64) {
        let leaving: Vec<Arc<Mailbox>> = {
            let mut roster = lock(&self.roster);
            let home = self.home_location;
            let (go, stay): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut roster.idle)
                .into_iter()
                .partition(|w| tracked().any(|k| w.location.get(k) == ino && home.get(k) != ino));
            roster.idle = stay;
            go.into_iter().map(|w| w.worker).collect()
        };
        if !leaving.is_empty() {
            // Counted by `make_idle`, which each of them passes through.
            crate::trace::event!(
                tracing::Level::DEBUG,
                ino,
                workers = leaving.len(),
                "the program dropped its last handle to a namespace: idle workers inside go home"
            );
        }
        for worker in leaving {
            worker.send(Msg::GoHome);
        }
    }

    /// Waits until no worker is in the namespace with inode `ino` (unless
    /// the program holds a handle to it again).
    pub(crate) fn wait_left(&self, ino: u64, deadline: Instant) -> Result<()> {
        let home = self.home_location;
        let inside = |roster: &Roster| {
            roster
                .located
                .iter()
                .any(|(_, p)| tracked().any(|k| p.get(k) == ino && home.get(k) != ino))
        };
        let mut roster = lock(&self.roster);
        while inside(&roster) && !is_held(ino) {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Worker {
                    cause: WorkerCause::StillInside,
                    reason: format!(
                        "a worker is still inside the namespace with inode {ino} after \
                         the program dropped its last handle"
                    ),
                });
            }
            roster = self
                .moved
                .wait_timeout(roster, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// Records `inside`, threads a body left inside; forgets those that are
    /// no longer `alive`. Returns those of `inside` not recorded before.
    pub(crate) fn note_threads_inside(
        &self,
        alive: &BTreeSet<i32>,
        inside: impl Iterator<Item = i32>,
    ) -> BTreeSet<i32> {
        let mut known = lock(&self.threads_inside);
        known.retain(|tid| alive.contains(tid));
        let new: BTreeSet<i32> = inside.filter(|tid| !known.contains(tid)).collect();
        known.extend(&new);
        new
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        let (workers, idle, overflowed) = self.counts();
        self.counters.snapshot(workers, idle, overflowed)
    }

    /// Live workers (busy, idle or starting), idle workers, and workers
    /// started beyond the cap so far.
    /// In a forked child, none: the workers are the parent's, and the
    /// lock may have been held at the fork.
    pub(crate) fn counts(&self) -> (usize, usize, u64) {
        if !self.is_in_this_process() {
            return (0, 0, 0);
        }
        let roster = lock(&self.roster);
        (roster.total, roster.idle.len(), roster.overflowed)
    }

    /// Tells idle workers to exit; busy workers exit when their call
    /// returns. Queued tasks fail.
    pub(crate) fn shutdown(&self) {
        let (idle, pending) = {
            let mut roster = lock(&self.roster);
            roster.shutdown = true;
            roster.total -= roster.idle.len();
            let idle = std::mem::take(&mut roster.idle);
            for w in &idle {
                remove_located(&mut roster, w.worker.id);
            }
            self.available.notify_all();
            self.moved.notify_all();
            (idle, std::mem::take(&mut roster.pending))
        };
        for w in idle {
            w.worker.send(Msg::Exit);
        }
        for task in pending {
            task.finish(Some(shut_down_error()));
        }
    }
}

/// The books as the loom models read them (`executor/models/`).
#[cfg(all(test, loom))]
#[derive(Debug)]
pub(crate) struct Books {
    pub(crate) total: usize,
    /// Ids of the idle workers.
    pub(crate) idle: Vec<u64>,
    /// Ids and locations of the workers the books say are alive.
    pub(crate) located: Vec<(u64, Location)>,
    pub(crate) pending: usize,
    pub(crate) waiting: usize,
    /// Workers counted as finishing a call.
    pub(crate) finishing: usize,
}

#[cfg(all(test, loom))]
impl Scheduler {
    /// A copy of the books, taken under their lock.
    pub(crate) fn books(&self) -> Books {
        let roster = lock(&self.roster);
        Books {
            total: roster.total,
            idle: roster.idle.iter().map(|w| w.worker.id).collect(),
            located: roster.located.clone(),
            pending: roster.pending.len(),
            waiting: roster.waiting,
            finishing: self.finishing.load(Ordering::Acquire),
        }
    }
}

fn remove_located(roster: &mut Roster, id: u64) {
    roster.located.retain(|(w, _)| *w != id);
}

fn shut_down_error() -> Error {
    Error::Worker {
        cause: WorkerCause::ShutDown,
        reason: "the executor was shut down".into(),
    }
}

/// The error for a call made in a forked child on an executor (or a
/// future) of the parent process.
pub(crate) fn forked_error() -> Error {
    Error::Worker {
        cause: WorkerCause::Forked,
        reason: "this executor (or call) was made before fork(2), in the parent process, whose \
                 worker threads the child does not have; build a new Executor in the child (the \
                 global executor, used by NsSet::run and #[in_namespace], starts afresh by \
                 itself)"
            .into(),
    }
}
