//! The shared state of an executor: idle workers, the count of live ones,
//! where each worker is, dispatch, and eviction.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::executor::handoff::spin_until;
use crate::executor::origin::{self, Origin, Request};
use crate::executor::stats::{Counters, Stats};
use crate::executor::target::{tracked, Profile, Target};
use crate::executor::task::Task;
use crate::executor::worker;
use crate::kind::{NsKind, NsKinds};
use crate::set::NsSet;

/// How an executor behaves; see [`ExecutorBuilder`](super::ExecutorBuilder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) spin: Duration,
    pub(crate) check_after_call: bool,
    pub(crate) overflow_after: Duration,
}

/// A message to a worker.
pub(crate) enum Msg {
    Task(Task),
    /// Leave the namespaces you are in for home: the program dropped its
    /// last handle to one of them.
    GoHome,
    /// Exit now; the sender has already accounted for the worker.
    Exit,
}

/// The way to reach one worker thread.
pub(crate) struct WorkerHandle {
    pub(crate) id: u64,
    inbox: Mutex<Option<Msg>>,
    ready: AtomicBool,
    thread: Thread,
}

impl WorkerHandle {
    fn for_current_thread(id: u64) -> WorkerHandle {
        WorkerHandle {
            id,
            inbox: Mutex::new(None),
            ready: AtomicBool::new(false),
            thread: thread::current(),
        }
    }

    fn send(&self, msg: Msg) {
        *lock(&self.inbox) = Some(msg);
        self.ready.store(true, Ordering::Release);
        self.thread.unpark();
    }

    fn take(&self) -> Option<Msg> {
        let msg = lock(&self.inbox).take();
        self.ready.store(false, Ordering::Release);
        msg
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// An idle worker, as the pool sees it.
struct Idle {
    worker: Arc<WorkerHandle>,
    profile: Profile,
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

struct Pool {
    /// Idle workers, most recently used last.
    idle: Vec<Idle>,
    /// Owned tasks that found every worker busy at the cap, oldest first.
    pending: VecDeque<Task>,
    /// Where every live worker is (by id), busy or idle.
    located: Vec<(u64, Profile)>,
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

pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The fork generation this executor was made in: in a forked child
    /// its threads do not exist, and its locks must not be touched.
    pub(crate) generation: u64,
    pub(crate) origin: &'static Origin,
    /// Fds of the home namespaces, to switch workers back to.
    pub(crate) home: NsSet,
    /// Where a worker at home is, for every tracked kind.
    pub(crate) home_profile: Profile,
    /// Kinds a worker cannot switch back to home once it has left: mnt
    /// (its fs state stays private), and any home namespace owned by a user
    /// namespace outside the process's own. A worker that left home for
    /// one of them serves that namespace only.
    pub(crate) one_way: NsKinds,
    pool: Mutex<Pool>,
    /// Signalled when a worker becomes idle or exits.
    available: Condvar,
    /// Signalled when a worker changes namespaces or exits.
    moved: Condvar,
    next_id: AtomicU64,
    pub(crate) counters: Counters,
}

/// Locks a mutex; a poisoned one (a panic while it was held, which this
/// module's code does not do) is used as it is: its data stays consistent
/// because every critical section only moves values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every executor of the process, for eviction.
static EXECUTORS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// The live executors of this process (not those inherited through fork).
fn executors() -> Vec<Arc<Shared>> {
    let generation = origin::generation();
    let mut list = lock(&EXECUTORS);
    list.retain(|w| w.strong_count() > 0);
    list.iter()
        .filter_map(Weak::upgrade)
        .filter(|s| s.generation == generation)
        .collect()
}

/// The program dropped its last handle to the namespace with inode `ino`:
/// idle workers inside go home (busy ones do when their call ends).
pub(crate) fn on_last_handle_dropped(ino: u64) {
    for shared in executors() {
        shared.evict(ino);
    }
}

/// Waits until no worker of any executor is in the namespace with inode
/// `ino`, as long as the program holds no handle to it.
pub(crate) fn wait_until_left(ino: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    for shared in executors() {
        shared.evict(ino);
        shared.wait_left(ino, deadline)?;
    }
    Ok(())
}

impl Shared {
    /// The shared state of a new executor whose workers live in `home`.
    pub(crate) fn new(config: Config, home: NsSet, origin: &'static Origin) -> Result<Arc<Shared>> {
        let home_profile = origin.profile.overlaid(&home.target());
        let mut one_way = NsKinds::from(NsKind::Mnt);
        for ns in &home {
            if !crate::reach::can_return_to(ns)? {
                one_way.insert(ns.kind());
            }
        }
        let shared = Arc::new(Shared {
            config,
            generation: origin.generation(),
            origin,
            home,
            home_profile,
            one_way,
            pool: Mutex::new(Pool {
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
            counters: Counters::default(),
        });
        lock(&EXECUTORS).push(Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Whether this executor was made in the calling process (not in a
    /// parent before `fork`).
    pub(crate) fn is_in_this_process(&self) -> bool {
        self.generation == origin::generation()
    }

    /// `Err` in a forked child: the executor's threads are the parent's.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.is_in_this_process() {
            Ok(())
        } else {
            Err(super::future::forked_error())
        }
    }

    /// Refuses a call that would need a worker to switch to a kind no
    /// thread can enter (user, time). A namespace of those kinds that the
    /// workers are in already needs no switch and is accepted, as most
    /// containers share the host's time namespace, and many its user
    /// namespace.
    pub(crate) fn check_runnable(&self, target: &Target<'_>) -> Result<()> {
        for ns in target.iter() {
            let kind = ns.kind();
            let own = match kind {
                NsKind::User => crate::reach::own_user_ns()?.ino(),
                NsKind::Time => self.home_profile.get(NsKind::Time),
                _ => continue,
            };
            if ns.id().ino() != own {
                crate::trace::event!(
                    tracing::Level::DEBUG,
                    namespace = %ns.id(),
                    "refused: no thread can enter another {kind} namespace"
                );
                let (reason, instead) = kind.thread_refusal().unwrap_or(("", ""));
                return Err(Error::UnsupportedOnThread {
                    kind,
                    reason,
                    instead,
                });
            }
        }
        Ok(())
    }

    /// Gives `task` to a worker: an idle one already there, else an idle
    /// one that can switch, else a new one, else waits.
    ///
    /// Only a blocking call made on one of this executor's own workers may
    /// start a worker beyond the cap (its worker waits for it, so it lends
    /// it its place). A blocking call that has waited at the cap for
    /// `overflow_after` while no call finished gets a worker beyond the cap
    /// too: the busy workers may be waiting for it (a body that waits for a
    /// thread of its own that calls into this executor).
    pub(crate) fn dispatch(self: &Arc<Self>, task: Task) {
        let desired = task.desired;
        let nested = !task.is_owned() && worker::is_worker_of(self);
        let one_way = self.one_way;
        // Already where the call needs it for every one-way kind.
        let settled = |w: &Profile| one_way.iter().all(|k| w.get(k) == desired.get(k));
        // Can get there: for each one-way kind, already there or still home.
        let able = |w: &Profile| self.can_serve(w, &desired);
        let mut watch: Option<(u64, Instant)> = None;
        let mut pool = lock(&self.pool);
        loop {
            if pool.shutdown {
                drop(pool);
                task.finish(Some(Error::Worker {
                    reason: "the executor was shut down".into(),
                }));
                return;
            }
            // A worker can switch any kind but the one-way ones: once it
            // left home for one of those it serves that namespace only.
            let exact = pool.idle.iter().rposition(|w| w.profile == desired);
            let same = || pool.idle.iter().rposition(|w| settled(&w.profile));
            let fresh = || pool.idle.iter().rposition(|w| able(&w.profile));
            if let Some(i) = exact.or_else(same).or_else(fresh) {
                let idle = pool.idle.remove(i);
                drop(pool);
                idle.worker.send(Msg::Task(task));
                return;
            }
            if pool.total < self.config.max_workers || nested {
                pool.total += 1;
                drop(pool);
                self.spawn(task);
                return;
            }
            // At the cap, with idle workers that cannot serve this call
            // (dedicated to other one-way namespaces): replace one.
            if !pool.idle.is_empty() {
                let idle = pool.idle.remove(0);
                drop(pool);
                idle.worker.send(Msg::Exit);
                self.spawn(task);
                return;
            }
            // An owned task never blocks its submitter: it waits in the queue
            // for the next worker that frees up.
            if task.is_owned() {
                pool.pending.push_back(task);
                return;
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
            let (seen, since) = *watch.get_or_insert((pool.completed, now));
            if pool.completed != seen {
                watch = Some((pool.completed, now));
            } else if now.duration_since(since) >= self.config.overflow_after {
                pool.total += 1;
                pool.overflowed += 1;
                crate::trace::event!(
                    tracing::Level::WARN,
                    workers = pool.total,
                    max_workers = self.config.max_workers,
                    "no call finished while this one waited at the cap: starting a worker \
                     beyond it"
                );
                drop(pool);
                self.spawn(task);
                return;
            }
            let since = watch.map_or(now, |(_, since)| since);
            let left = self
                .config
                .overflow_after
                .saturating_sub(now.duration_since(since));
            pool.waiting += 1;
            pool = self
                .available
                .wait_timeout(pool, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            pool.waiting -= 1;
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
        let shared = Arc::clone(self);
        let on_failure = Arc::clone(self);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.origin.spawn(Request {
            name: "nsguard-worker",
            start: Box::new(move || {
                let first = lock(&for_worker).take();
                if let Some(first) = first {
                    let handle = Arc::new(WorkerHandle::for_current_thread(id));
                    worker::main(shared, handle, first);
                }
            }),
            failed: Box::new(move |err| {
                on_failure.forget_worker(None);
                let task = lock(&slot).take();
                if let Some(task) = task {
                    task.finish(Some(err));
                }
            }),
        });
    }

    /// Whether a worker at `w` may serve a call that wants `desired`: for
    /// every one-way kind it is already there or still home.
    fn can_serve(&self, w: &Profile, desired: &Profile) -> bool {
        let home = &self.home_profile;
        self.one_way
            .iter()
            .all(|k| w.get(k) == desired.get(k) || w.get(k) == home.get(k))
    }

    /// Whether the program still holds a handle to every namespace a
    /// worker at `w` is in away from home.
    fn is_pinned(&self, w: &Profile) -> bool {
        tracked()
            .filter(|k| w.get(*k) != self.home_profile.get(*k))
            .all(|k| crate::live::is_held(w.get(k)))
    }

    /// A worker is done with its task: it takes a queued task it can serve,
    /// or gives its place to a new worker for a queued task it cannot, or
    /// goes home if the program let go of where it is, or becomes idle.
    pub(crate) fn make_idle(
        self: &Arc<Self>,
        worker: &Arc<WorkerHandle>,
        profile: Profile,
        after_call: bool,
    ) -> AfterCall {
        let mut pool = lock(&self.pool);
        if after_call {
            pool.completed += 1;
        }
        if pool.shutdown {
            pool.total -= 1;
            remove_located(&mut pool, worker.id);
            self.moved.notify_all();
            self.available.notify_all();
            return AfterCall::Exit;
        }
        if let Some(i) = pool
            .pending
            .iter()
            .position(|task| self.can_serve(&profile, &task.desired))
        {
            if let Some(task) = pool.pending.remove(i) {
                return AfterCall::Serve(task);
            }
        }
        if let Some(task) = pool.pending.pop_front() {
            remove_located(&mut pool, worker.id);
            self.moved.notify_all();
            drop(pool);
            self.spawn(task); // this worker's place goes to the new one
            return AfterCall::Exit;
        }
        if profile != self.home_profile && !self.is_pinned(&profile) {
            Counters::add(&self.counters.evictions, 1);
            return AfterCall::GoHome;
        }
        pool.idle.push(Idle {
            worker: Arc::clone(worker),
            profile,
        });
        if pool.waiting > 0 {
            self.available.notify_one();
        }
        AfterCall::Wait
    }

    /// Records where worker `id` is now.
    pub(crate) fn relocate(&self, id: u64, profile: Profile) {
        let mut pool = lock(&self.pool);
        match pool.located.iter_mut().find(|(w, _)| *w == id) {
            Some(entry) => entry.1 = profile,
            None => pool.located.push((id, profile)),
        }
        self.moved.notify_all();
    }

    /// A worker exits of its own accord (retired, or failed to start): its
    /// place goes to a queued task, if any. `id` is `None` for a worker
    /// that never started.
    pub(crate) fn forget_worker(self: &Arc<Self>, id: Option<u64>) {
        let mut pool = lock(&self.pool);
        pool.completed += 1;
        if let Some(id) = id {
            remove_located(&mut pool, id);
            self.moved.notify_all();
        }
        if !pool.shutdown {
            if let Some(task) = pool.pending.pop_front() {
                drop(pool);
                self.spawn(task);
                return;
            }
        }
        pool.total -= 1;
        if pool.waiting > 0 {
            self.available.notify_one();
        }
    }

    /// Waits for the next message; `None` when the worker idled past the
    /// timeout and was taken off the pool (it must exit).
    pub(crate) fn next_msg(&self, worker: &Arc<WorkerHandle>) -> Option<Msg> {
        // `None`: no deadline (an idle timeout too large to add to now).
        let deadline = Instant::now().checked_add(self.config.idle_timeout);
        spin_until(|| worker.is_ready(), self.config.spin);
        loop {
            if worker.is_ready() {
                if let Some(msg) = worker.take() {
                    return Some(msg);
                }
            }
            let now = Instant::now();
            match deadline {
                None => {
                    thread::park();
                    continue;
                }
                Some(deadline) if now < deadline => {
                    thread::park_timeout(deadline - now);
                    continue;
                }
                Some(_) => {}
            }
            let mut pool = lock(&self.pool);
            if let Some(i) = pool
                .idle
                .iter()
                .position(|w| Arc::ptr_eq(&w.worker, worker))
            {
                pool.idle.remove(i);
                pool.total -= 1;
                remove_located(&mut pool, worker.id);
                self.moved.notify_all();
                if pool.waiting > 0 {
                    self.available.notify_one();
                }
                return None;
            }
            drop(pool);
            // Claimed by a caller just now: its message is on the way.
            while !worker.is_ready() {
                thread::park();
            }
        }
    }

    /// Sends idle workers inside the namespace with inode `ino` home.
    fn evict(&self, ino: u64) {
        let leaving: Vec<Arc<WorkerHandle>> = {
            let mut pool = lock(&self.pool);
            let home = self.home_profile;
            let (go, stay): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(|w| tracked().any(|k| w.profile.get(k) == ino && home.get(k) != ino));
            pool.idle = stay;
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
    fn wait_left(&self, ino: u64, deadline: Instant) -> Result<()> {
        let home = self.home_profile;
        let inside = |pool: &Pool| {
            pool.located
                .iter()
                .any(|(_, p)| tracked().any(|k| p.get(k) == ino && home.get(k) != ino))
        };
        let mut pool = lock(&self.pool);
        while inside(&pool) && !crate::live::is_held(ino) {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Worker {
                    reason: format!(
                        "a worker is still inside the namespace with inode {ino} after \
                         the program dropped its last handle"
                    ),
                });
            }
            pool = self
                .moved
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        let (workers, idle, overflowed) = self.counts();
        self.counters.snapshot(workers, idle, overflowed)
    }

    /// Live workers (busy, idle or starting), idle workers, and workers
    /// started beyond the cap so far.
    pub(crate) fn counts(&self) -> (usize, usize, u64) {
        let pool = lock(&self.pool);
        (pool.total, pool.idle.len(), pool.overflowed)
    }

    /// Tells idle workers to exit; busy workers exit when their call
    /// returns. Queued tasks fail.
    pub(crate) fn shutdown(&self) {
        let (idle, pending) = {
            let mut pool = lock(&self.pool);
            pool.shutdown = true;
            pool.total -= pool.idle.len();
            let idle = std::mem::take(&mut pool.idle);
            for w in &idle {
                remove_located(&mut pool, w.worker.id);
            }
            self.available.notify_all();
            self.moved.notify_all();
            (idle, std::mem::take(&mut pool.pending))
        };
        for w in idle {
            w.worker.send(Msg::Exit);
        }
        for task in pending {
            task.finish(Some(Error::Worker {
                reason: "the executor was shut down".into(),
            }));
        }
    }
}

fn remove_located(pool: &mut Pool, id: u64) {
    pool.located.retain(|(w, _)| *w != id);
}
