//! The origin: one thread per process, started by the first nsguard call
//! that could need workers, from which every worker of every executor is
//! started.
//!
//! A new thread inherits its creator's namespaces, root, cwd and
//! capabilities. Were workers started by whichever thread made a call, one
//! made inside a guard, or inside a body that entered a mount namespace, or
//! after dropping capabilities, would pass all of that on to every worker.
//! The origin settles in the process's own namespaces (those of its main
//! thread: nothing is switched by nsguard before the origin exists), checks
//! that it shares the process's root and cwd and has the main thread's
//! credentials and capabilities, and never runs user code, so the threads
//! it starts are clean.
//!
//! Between requests, the origin ends workers that have been idle for their
//! executor's idle timeout (through the hook the executors install,
//! [`set_idle_hook`]): a worker waits for its next call without a timer of
//! its own, which would cost every call that wakes it.
//!
//! After `fork(2)` the child has none of the parent's threads: its first
//! use starts an origin of its own ([`ForkLocal`]).

use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use crate::errno::Errno;
use crate::error::{Error, Result, WorkerCause};
use crate::handle::namespace::Namespace;
use crate::handle::proc_dir::ProcDir;
use crate::handle::reentry::can_return_to;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds};
use crate::process::helper_thread::thread_error;
use crate::process::user_code::contain;
use crate::sys::fork_local::ForkLocal;
use crate::thread::facts::FactsReader;
use crate::thread::location::Location;
use crate::thread::marks;

/// The kinds whose namespace a worker switches (and returns home from).
pub(crate) const HOME_KINDS: NsKinds = NsKinds::THREAD_SWITCHABLE;

/// The origin thread of this process.
pub(crate) struct Origin {
    /// Handles of the process's own namespaces of [`HOME_KINDS`].
    pub(crate) home: NsSet,
    /// The kinds of `home` a thread can switch back to (see
    /// [`can_return_to`]), worked out once: a guard on a
    /// thread found in one of these uses `home`'s handle as its way back.
    pub(crate) returnable: NsKinds,
    /// Where the origin thread, hence every new thread it starts, is.
    pub(crate) location: Location,
    /// Its thread id, to compare fs contexts with (`kcmp`).
    pub(crate) tid: i32,
    // Unused under loom, whose model origin starts threads itself.
    #[cfg_attr(loom, allow(dead_code))]
    requests: mpsc::Sender<Request>,
}

/// A thread for the origin to start.
pub(crate) struct Request {
    /// The thread's name.
    pub(crate) name: &'static str,
    /// What it runs. It must not own user code (closures, results): if the
    /// thread cannot be created, it is dropped on the origin thread.
    pub(crate) start: Box<dyn FnOnce() + Send>,
    /// Called on the origin thread with the error if the thread cannot be
    /// created; a panic in it is contained.
    pub(crate) failed: Box<dyn FnOnce(Error) + Send>,
}

/// The origin of this process's fork generation.
static ORIGIN: ForkLocal<Origin> = ForkLocal::new();

// The threads the model's origin started in this execution of a loom
// model, to be joined before it ends.
#[cfg(loom)]
loom::lazy_static! {
    static ref MODEL_THREADS: std::sync::Mutex<Vec<loom::thread::JoinHandle<()>>> =
        std::sync::Mutex::default();
    static ref MODEL_STARTED: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);
}

/// How many threads the model's origin started in this execution.
#[cfg(loom)]
pub(crate) fn model_threads_started() -> usize {
    MODEL_STARTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until every thread the model's origin started (and those they
/// started) has ended; returns how many there were.
#[cfg(loom)]
pub(crate) fn join_model_threads() -> usize {
    let mut joined = 0;
    loop {
        let next = MODEL_THREADS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let Some(thread) = next else {
            return joined;
        };
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
        joined += 1;
    }
}

/// This process's origin, started on first use.
///
/// # Errors
///
/// [`Error::Thread`] if the origin thread cannot start; [`Error::Worker`]
/// if the calling thread is not a clean place to start it from (it is
/// inside a guard, shares no fs context with the process, lacks the main
/// thread's capabilities…). Nothing is cached on error: a later call from
/// another thread may succeed.
pub(crate) fn get() -> Result<&'static Origin> {
    ORIGIN.get_or_try_make(Origin::start)
}

impl Origin {
    /// Starts the origin thread from the calling thread and checks it.
    fn start() -> Result<Origin> {
        if marks::depth() != 0 {
            return Err(Error::Worker {
                cause: WorkerCause::OriginRefused,
                reason: "nsguard's threads cannot be started from a thread inside an NsGuard \
                         (they would inherit its namespaces); make the first call from a \
                         thread that is not switched"
                    .into(),
            });
        }
        let main = MainThread::read()?;
        let home = match &main {
            Some(main) => main.home.try_clone()?,
            None => NsSet::current(HOME_KINDS)?,
        };
        let for_thread = home.try_clone()?;
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(Location, i32)>>();
        std::thread::Builder::new()
            .name("nsguard-origin".into())
            .spawn(move || {
                let ready = settle(&for_thread, main.as_ref());
                drop(for_thread);
                drop(main);
                let ok = ready.is_ok();
                let _ = ready_tx.send(ready);
                if ok {
                    serve(&inbox);
                }
            })
            .map_err(|e| thread_error("start nsguard's origin thread", &e))?;
        let (location, tid) = ready_rx.recv().map_err(|_| Error::Worker {
            cause: WorkerCause::OriginGone,
            reason: "nsguard's origin thread died while starting".into(),
        })??;
        // A kind that cannot be told is left out: guards then take the
        // general way, which asks again and reports the error.
        let returnable = (&home)
            .into_iter()
            .filter(|ns| can_return_to(ns).unwrap_or(false))
            .map(Namespace::kind)
            .collect();
        Ok(Origin {
            home,
            returnable,
            location,
            tid,
            requests,
        })
    }

    /// An origin for the loom models of the executor: no thread behind
    /// it, and the process's namespaces at `location` (worked out by the
    /// model); [`spawn`](Self::spawn) starts a model thread itself.
    #[cfg(loom)]
    pub(crate) fn for_model(location: Location) -> Origin {
        Origin {
            home: NsSet::new(),
            returnable: NsKinds::EMPTY,
            location,
            tid: 0,
            requests: mpsc::channel().0,
        }
    }

    /// Starts a thread (asynchronously); `request.failed` is called if it
    /// cannot be.
    pub(crate) fn spawn(&self, request: Request) {
        // Loom owns every thread of a model: the model's origin starts the
        // thread itself, at once.
        #[cfg(loom)]
        let sent: Result<(), mpsc::SendError<Request>> = {
            drop(request.failed);
            MODEL_STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let thread = crate::sync::thread::spawn(request.start);
            MODEL_THREADS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(thread);
            Ok(())
        };
        #[cfg(not(loom))]
        let sent = self.requests.send(request);
        if let Err(mpsc::SendError(request)) = sent {
            let failed = request.failed;
            let _ = contain(move || {
                failed(Error::Worker {
                    cause: WorkerCause::OriginGone,
                    reason: "nsguard's origin thread is gone".into(),
                });
            });
        }
    }
}

/// What the main thread of the process is: the reference for "the
/// process's own" state.
struct MainThread {
    home: NsSet,
    mnt: Namespace,
    status: Vec<u8>,
    tid: i32,
}

impl MainThread {
    /// Reads it through `/proc/self` (a pid of the caller's numbering would
    /// name another process in a `/proc` of another pid namespace). `None`
    /// if it cannot be read (the main thread has exited).
    ///
    /// # Errors
    ///
    /// [`Error::ForeignProc`] if `/proc` does not show this process.
    fn read() -> Result<Option<MainThread>> {
        let proc = match ProcDir::open_self() {
            Ok(proc) => proc,
            Err(err @ Error::ForeignProc { .. }) => return Err(err),
            Err(_) => return Ok(None),
        };
        let read = || -> Result<MainThread> {
            let home = HOME_KINDS
                .into_iter()
                .map(|kind| proc.namespace_file(kind, kind.thread_proc_name()))
                .collect::<Result<NsSet>>()?;
            let mnt = proc.namespace(NsKind::Mnt)?;
            let status = std::fs::read("/proc/self/status").map_err(|e| Error::Io {
                op: "reading",
                kind: None,
                path: Some("/proc/self/status".into()),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
            Ok(MainThread {
                home,
                mnt,
                status,
                // kcmp(2) takes ids of the caller's pid namespace.
                tid: nix::unistd::getpid().as_raw(),
            })
        };
        Ok(read().ok())
    }
}

/// On the origin thread: enter the process's own namespaces and check that
/// nothing else of the calling thread's state came along.
fn settle(home: &NsSet, main: Option<&MainThread>) -> Result<(Location, i32)> {
    let tid = nix::unistd::gettid().as_raw();
    home.move_current_thread_in()?;
    let refuse = |what: String| Error::Worker {
        cause: WorkerCause::OriginRefused,
        reason: format!(
            "nsguard's threads cannot be started from this thread: {what}; workers would \
             inherit it. Make the first nsguard call (or build the first Executor) from a \
             thread that has not changed its namespaces, fs context or credentials, e.g. \
             early in main"
        ),
    };
    if let Some(main) = main {
        let mnt = Namespace::current_unchecked(NsKind::Mnt)?;
        if mnt.id() != main.mnt.id() {
            return Err(refuse(format!(
                "it is in mount namespace {} but the process's main thread is in {}",
                mnt.id(),
                main.mnt.id()
            )));
        }
        let io = |errno| Error::Io {
            op: "reading the thread's status",
            kind: None,
            path: Some("/proc/thread-self/status".into()),
            errno,
        };
        let facts = FactsReader::new(main.tid)
            .and_then(|mut r| r.read(false))
            .map_err(io)?;
        if !facts.shares_fs() {
            return Err(refuse(
                "it has a root and working directory of its own (unshare(CLONE_FS))".into(),
            ));
        }
        if !facts.shares_files() {
            return Err(refuse(
                "it has an fd table of its own (unshare(CLONE_FILES)): fds that workers \
                 hand back would name other files in the caller's table"
                    .into(),
            ));
        }
        if let Err(diff) = facts.same_credentials_as(&main.status) {
            return Err(refuse(format!(
                "its credentials or capabilities differ from the main thread's ({diff})"
            )));
        }
    }
    Ok((Location::of_current_thread()?, tid))
}

/// What the origin calls between requests: it ends the workers idle for
/// their executor's idle timeout, and says how long until it must be called
/// again (`None`: not before the next request, as no worker is alive).
pub(crate) type IdleHook = fn() -> Option<Duration>;

static IDLE_HOOK: OnceLock<IdleHook> = OnceLock::new();

/// Installs the function the origin calls between requests. The first one
/// installed stays.
pub(crate) fn set_idle_hook(hook: IdleHook) {
    let _ = IDLE_HOOK.set(hook);
}

/// The origin thread's loop: start the threads asked for, and call the
/// idle hook when it asks to be called (and after every request: every
/// worker is started by one).
fn serve(inbox: &mpsc::Receiver<Request>) {
    let mut next: Option<Instant> = None;
    loop {
        let received = match next {
            None => inbox
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => inbox.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(Request {
                name,
                start,
                failed,
            }) => {
                if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(start) {
                    let err = thread_error("start a worker", &e);
                    let _ = contain(move || failed(err));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        next = IDLE_HOOK
            .get()
            .and_then(|hook| hook())
            .and_then(|after| Instant::now().checked_add(after));
    }
}
