//! The shared state of an executor: idle workers, the count of live ones,
//! dispatch, and the thread that starts new workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::executor::handoff::spin_until;
use crate::executor::target::Profile;
use crate::executor::task::Task;
use crate::executor::worker;
use crate::kind::{NsKind, NsKinds};
use crate::set::NsSet;

/// How an executor behaves; see [`Builder`](super::Builder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) spin: Duration,
    pub(crate) check_after_call: bool,
}

/// A message to a worker.
pub(crate) enum Msg {
    Task(Task),
    /// Exit now; the sender has already accounted for the worker.
    Exit,
}

/// The way to reach one worker thread.
pub(crate) struct WorkerHandle {
    inbox: Mutex<Option<Msg>>,
    ready: AtomicBool,
    thread: Thread,
}

impl WorkerHandle {
    pub(crate) fn for_current_thread() -> WorkerHandle {
        WorkerHandle {
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
    /// Exit (its place went to a new worker, or the executor shuts down).
    Exit,
}

struct Pool {
    /// Idle workers, most recently used last.
    idle: Vec<Idle>,
    /// Owned tasks that found every worker busy at the cap, oldest first.
    pending: std::collections::VecDeque<Task>,
    /// Live workers, busy or idle (or being started).
    total: usize,
    /// Callers waiting for a worker.
    waiting: usize,
    shutdown: bool,
}

/// A request to the spawner thread: start a worker that runs `first`.
struct Spawn {
    first: Task,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Fds of the home namespaces, to switch workers back to.
    pub(crate) home: NsSet,
    /// Where a fresh worker is, for every tracked kind.
    pub(crate) home_profile: Profile,
    /// Kinds a worker cannot switch back to home once it has left: mnt
    /// (its fs state stays private), and any home namespace owned by a user
    /// namespace outside the process's own. A worker that left home for
    /// one of them serves that namespace only.
    one_way: NsKinds,
    pool: Mutex<Pool>,
    available: Condvar,
    spawner: Mutex<Option<mpsc::Sender<Spawn>>>,
}

/// Locks a mutex; a poisoned one (a panic while it was held, which this
/// module's code does not do) is used as it is: its data stays consistent
/// because every critical section only moves values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Starts the spawner thread in `home` and returns the shared state.
    pub(crate) fn start(config: Config, home: NsSet) -> Result<Arc<Shared>> {
        let (tx, rx) = mpsc::channel::<Spawn>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Profile>>();
        let spawner_home = home.try_clone()?;
        let shared_slot: Arc<Mutex<Option<Arc<Shared>>>> = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&shared_slot);
        thread::Builder::new()
            .name("nsguard-spawner".into())
            .spawn(move || {
                let profile = worker::settle_in(&spawner_home);
                let ok = profile.is_ok();
                let _ = ready_tx.send(profile);
                drop(spawner_home);
                if ok {
                    spawner_main(rx, slot);
                }
            })
            .map_err(|e| Error::Worker {
                reason: format!("cannot start the spawner thread: {e}"),
            })?;
        let home_profile = ready_rx.recv().map_err(|_| Error::Worker {
            reason: "the spawner thread died".into(),
        })??;
        let mut one_way = NsKinds::from(NsKind::Mnt);
        for ns in &home {
            if !crate::reach::can_return_to(ns)? {
                one_way.insert(ns.kind());
            }
        }
        let shared = Arc::new(Shared {
            config,
            home,
            home_profile,
            one_way,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                pending: std::collections::VecDeque::new(),
                total: 0,
                waiting: 0,
                shutdown: false,
            }),
            available: Condvar::new(),
            spawner: Mutex::new(Some(tx)),
        });
        *lock(&shared_slot) = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// Gives `task` to a worker: an idle one already
    /// there, else an idle one that can switch, else a new one, else waits.
    pub(crate) fn dispatch(&self, task: Task, caller_is_worker: bool) {
        let desired = task.desired;
        let one_way = self.one_way;
        // Already where the call needs it for every one-way kind.
        let settled = |w: &Profile| one_way.iter().all(|k| w.get(k) == desired.get(k));
        // Can get there: for each one-way kind, already there or still home.
        let able = |w: &Profile| self.can_serve(w, &desired);
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
            // Nested calls may exceed the cap: their caller is a worker that
            // blocks until they finish, so it lends them its place.
            if pool.total < self.config.max_workers || caller_is_worker {
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
            pool.waiting += 1;
            pool = self.available.wait(pool).unwrap_or_else(|p| p.into_inner());
            pool.waiting -= 1;
        }
    }

    fn spawn(&self, task: Task) {
        let sender = lock(&self.spawner).clone();
        let Some(sender) = sender else {
            self.forget_worker();
            task.finish(Some(Error::Worker {
                reason: "the executor was shut down".into(),
            }));
            return;
        };
        if let Err(mpsc::SendError(request)) = sender.send(Spawn { first: task }) {
            self.forget_worker();
            request.first.finish(Some(Error::Worker {
                reason: "the spawner thread is gone".into(),
            }));
        }
    }

    /// Whether a worker at `w` may serve a call that wants `desired`: for
    /// every one-way kind it is already there or still home.
    fn can_serve(&self, w: &Profile, desired: &Profile) -> bool {
        let home = &self.home_profile;
        self.one_way
            .iter()
            .all(|k| w.get(k) == desired.get(k) || w.get(k) == home.get(k))
    }

    /// A worker is done with its task: it takes a queued task it can serve,
    /// or gives its place to a new worker for a queued task it cannot, or
    /// becomes idle.
    pub(crate) fn make_idle(&self, worker: &Arc<WorkerHandle>, profile: Profile) -> AfterCall {
        let mut pool = lock(&self.pool);
        if pool.shutdown {
            pool.total -= 1;
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
            drop(pool);
            self.spawn(task); // this worker's place goes to the new one
            return AfterCall::Exit;
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

    /// A worker exits of its own accord (poisoned, or failed to start): its
    /// place goes to a queued task, if any.
    pub(crate) fn forget_worker(&self) {
        let mut pool = lock(&self.pool);
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
        let deadline = Instant::now() + self.config.idle_timeout;
        spin_until(|| worker.is_ready(), self.config.spin);
        loop {
            if worker.is_ready() {
                if let Some(msg) = worker.take() {
                    return Some(msg);
                }
            }
            let now = Instant::now();
            if now < deadline {
                thread::park_timeout(deadline - now);
                continue;
            }
            let mut pool = lock(&self.pool);
            if let Some(i) = pool
                .idle
                .iter()
                .position(|w| Arc::ptr_eq(&w.worker, worker))
            {
                pool.idle.remove(i);
                pool.total -= 1;
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

    /// Live workers (busy, idle or starting) and idle workers.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let pool = lock(&self.pool);
        (pool.total, pool.idle.len())
    }

    /// Tells idle workers and the spawner to exit; busy workers exit when
    /// their call returns.
    pub(crate) fn shutdown(&self) {
        let (idle, pending) = {
            let mut pool = lock(&self.pool);
            pool.shutdown = true;
            pool.total -= pool.idle.len();
            self.available.notify_all();
            (
                std::mem::take(&mut pool.idle),
                std::mem::take(&mut pool.pending),
            )
        };
        for w in idle {
            w.worker.send(Msg::Exit);
        }
        for task in pending {
            task.finish(Some(Error::Worker {
                reason: "the executor was shut down".into(),
            }));
        }
        lock(&self.spawner).take();
    }
}

fn spawner_main(rx: mpsc::Receiver<Spawn>, slot: Arc<Mutex<Option<Arc<Shared>>>>) {
    while let Ok(Spawn { first }) = rx.recv() {
        let Some(shared) = lock(&slot).clone() else {
            first.finish(Some(Error::Worker {
                reason: "the executor is not ready".into(),
            }));
            continue;
        };
        // The task travels through a slot so that it can be failed with the
        // real reason if the thread cannot be created.
        let handoff = Arc::new(Mutex::new(Some(first)));
        let for_worker = Arc::clone(&handoff);
        let worker_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("nsguard-worker".into())
            .spawn(move || {
                let first = lock(&for_worker).take();
                if let Some(first) = first {
                    worker::main(worker_shared, first);
                }
            });
        if let Err(e) = spawned {
            shared.forget_worker();
            if let Some(first) = lock(&handoff).take() {
                first.finish(Some(Error::Worker {
                    reason: format!("cannot start a worker thread: {e}"),
                }));
            }
        }
    }
    // Break the cycle spawner -> Shared -> spawner's sender.
    lock(&slot).take();
}
