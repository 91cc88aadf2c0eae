//! The tokio context a body runs in (feature `tokio`): its place's runtime.
//!
//! A body called from within a tokio runtime may use tokio (make a
//! `TcpListener`, a netlink connection, sleep, `spawn_blocking`), so it
//! needs a runtime context on the worker. It cannot be the caller's
//! runtime: tokio starts a blocking-pool thread from whichever thread first
//! needs one, and a thread inherits the namespaces of the thread that
//! starts it, so `spawn_blocking` (and `lookup_host`, `tokio::fs`) in a
//! body would leave a thread of the caller's pool inside, later serving the
//! caller's other blocking work there: the very bug nsguard exists to
//! prevent.
//!
//! So a body runs in the context of a *set runtime*: one per place (the
//! call's namespaces, with the executor's home for the kinds its set does
//! not name), a current-thread tokio runtime with I/O and timers,
//!
//! - driven by one thread of nsguard's, started by the origin, at home:
//!   sockets and timers a body makes register with it and work from any
//!   runtime, and tasks a body spawns run on it, at home, as they would
//!   have on the caller's runtime;
//! - whose blocking threads all live in the place: each moves there when it
//!   starts (wherever it was started from) and exits after a second idle,
//!   so blocking work a body starts runs inside, on threads that never
//!   serve anything else;
//! - retired when the program drops its last handle to one of the place's
//!   namespaces (no new body uses it; `netns::delete` waits until its
//!   blocking threads are gone), and stopped once nothing it serves is
//!   left: no task spawned on it is alive and its I/O driver has nothing
//!   registered but its own (read from the kernel: the epoll set's fdinfo,
//!   found through a marker socket). A socket a body made keeps working
//!   for as long as it is open, as any socket made inside does.
//!
//! A body whose place is the process's own runs in the caller's runtime:
//! a thread started there is at home.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::errno::Errno;
use crate::error::{Error, Result, WorkerCause};
use crate::executor::scheduler::Scheduler;
use crate::executor::set_ref::SetRef;
use crate::handle::namespace::Namespace;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, SETNS_ORDER};
use crate::process::origin::{self, Request};
use crate::sys;
use crate::sys::fork_local::ForkLocal;
use crate::thread::location::{tracked, Location};
use crate::thread::owners::{disown_runtime_thread, own_runtime_thread, Owned, Role};

/// The name of a set runtime's threads: the driver, and its blocking
/// threads once they run.
pub(crate) const THREAD_NAME: &str = "nsguard-tokio";

/// How long a blocking thread of a set runtime waits idle for more work
/// before it exits.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How often `netns::delete` looks whether a stopped blocking thread has
/// exited.
const EXIT_LOOK: Duration = Duration::from_millis(5);

/// Whether thread `tid` of this process still exists.
fn thread_exists(tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// How often a retired set runtime looks whether anything it serves is
/// left.
const RETIRED_LOOK: Duration = Duration::from_secs(1);

/// The set runtimes of this fork generation, running or stopping.
static RUNTIMES: ForkLocal<Mutex<Vec<Arc<SetRuntime>>>> = ForkLocal::new();

fn runtimes() -> MutexGuard<'static, Vec<Arc<SetRuntime>>> {
    let made = RUNTIMES.get_or_try_make(|| Ok::<_, std::convert::Infallible>(Mutex::default()));
    let Ok(list) = made;
    list.lock().unwrap_or_else(|p| p.into_inner())
}

/// The runtime of one place.
struct SetRuntime {
    location: Location,
    handle: Handle,
    /// Retires it; `None` once it was told to.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Its blocking threads, which live inside the place, by thread id
    /// (some may have exited: see `wait_left`).
    inside: Arc<(Mutex<BTreeSet<i32>>, Condvar)>,
}

impl SetRuntime {
    fn stopping(&self) -> bool {
        lock(&self.stop).is_none()
    }

    fn tell_stop(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }

    /// Waits until none of its blocking threads exists any more (a thread
    /// holds its namespaces until it is gone from `/proc/self/task`, after
    /// its stop hook has run), or `deadline` passes.
    fn wait_left(&self, deadline: Instant) -> bool {
        let (tids, changed) = &*self.inside;
        let mut tids = lock(tids);
        loop {
            tids.retain(|tid| thread_exists(*tid));
            if tids.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Woken by a stop hook; the exit itself is looked for again
            // after a short while.
            tids = changed
                .wait_timeout(tids, (deadline - now).min(EXIT_LOOK))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tokio runtime a body for `desired` runs in, called on the caller's
/// thread before the body is handed over: `None` when the caller is in no
/// runtime (the body gets no tokio context, as on any other thread), the
/// caller's when `desired` is the process's own place, else the place's
/// set runtime, started on first use.
///
/// # Errors
///
/// [`Error::Thread`] or [`Error::Io`] if a set runtime cannot be started;
/// nothing of the body has run then.
pub(crate) fn context_for(
    scheduler: &Scheduler,
    target: &SetRef<'_>,
    desired: &Location,
) -> Result<Option<Handle>> {
    let Ok(caller) = Handle::try_current() else {
        return Ok(None);
    };
    let origin = origin::get()?;
    if *desired == origin.location {
        return Ok(Some(caller));
    }
    let mut list = runtimes();
    if let Some(found) = list
        .iter()
        .find(|rt| rt.location == *desired && !rt.stopping())
    {
        return Ok(Some(found.handle.clone()));
    }
    let place = Place::of(scheduler, target, desired, &origin.location)?;
    let runtime = start(place, *desired)?;
    let handle = runtime.handle.clone();
    list.push(runtime);
    Ok(Some(handle))
}

/// Starts the runtime of `location`, and its driver thread through the
/// origin.
fn start(place: Place, location: Location) -> Result<Arc<SetRuntime>> {
    let place = Arc::new(place);
    let entered = Arc::clone(&place);
    let inside = Arc::new((Mutex::new(BTreeSet::new()), Condvar::new()));
    let (came, left) = (Arc::clone(&inside), Arc::clone(&inside));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(THREAD_NAME)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .on_thread_start(move || {
            own_runtime_thread();
            let mut tids = lock(&came.0);
            tids.retain(|tid| thread_exists(*tid));
            tids.insert(nix::unistd::gettid().as_raw());
            drop(tids);
            entered.settle_or_abort("a blocking thread of the tokio runtime of");
        })
        .on_thread_stop(move || {
            disown_runtime_thread();
            left.1.notify_all();
        })
        .build()
        .map_err(|e| Error::Thread {
            purpose: "build the tokio runtime of a set",
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
        })?;
    // What the runtime's I/O driver serves, told apart from its own.
    let registrations = Registrations::of(&runtime);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let set_runtime = Arc::new(SetRuntime {
        location,
        handle: runtime.handle().clone(),
        stop: Mutex::new(Some(stop_tx)),
        inside,
    });
    let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<()>>();
    let failed_tx = started_tx.clone();
    let driven = Arc::clone(&set_runtime);
    origin::get()?.spawn(Request {
        name: THREAD_NAME,
        start: Box::new(move || {
            let _owned = Owned::register(Role::Runtime);
            let _ = started_tx.send(Ok(()));
            runtime.block_on(async {
                let _ = stop_rx.await;
                // Retired: it serves what bodies made until none is left.
                while in_use(&registrations) {
                    tokio::time::sleep(RETIRED_LOOK).await;
                }
            });
            drop(registrations);
            // Waits for the blocking threads to finish what they run.
            drop(runtime);
            drop(place);
            runtimes().retain(|rt| !Arc::ptr_eq(rt, &driven));
        }),
        failed: Box::new(move |err| {
            let _ = failed_tx.send(Err(err));
        }),
    });
    match started_rx.recv() {
        Ok(Ok(())) => Ok(set_runtime),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(Error::Worker {
            cause: WorkerCause::OriginGone,
            reason: "nsguard's origin thread is gone".into(),
        }),
    }
}

/// The program dropped its last handle to the namespace with inode `ino`:
/// the set runtimes of places in it stop (asynchronously).
pub(crate) fn evict(ino: u64) {
    let home = match origin::get() {
        Ok(origin) => origin.location,
        Err(_) => return,
    };
    for runtime in runtimes().iter() {
        if names_away(&runtime.location, &home, ino) {
            runtime.tell_stop();
        }
    }
}

/// Retires the set runtimes in the namespace with inode `ino` and waits
/// until none of their threads is inside, or `deadline` passes (`false`).
pub(crate) fn wait_stopped(ino: u64, deadline: Instant) -> bool {
    evict(ino);
    let Ok(origin) = origin::get() else {
        return true;
    };
    let inside: Vec<_> = runtimes()
        .iter()
        .filter(|rt| names_away(&rt.location, &origin.location, ino))
        .cloned()
        .collect();
    inside.iter().all(|rt| rt.wait_left(deadline))
}

/// Whether a retired runtime still serves something: a task spawned on it
/// is alive, or its I/O driver has more registered than its own (a socket
/// or a timer's fd a body made). Unknown registrations count as in use.
fn in_use(registrations: &Option<Registrations>) -> bool {
    let tasks = Handle::current().metrics().num_alive_tasks();
    tasks > 0 || registrations.as_ref().is_none_or(Registrations::beyond_own)
}

/// What a set runtime's I/O driver has registered, read from the kernel:
/// the fds of its epoll set, listed in `/proc/self/fdinfo/<epoll fd>`
/// (tokio tells it only under an unstable flag). The epoll fd is found
/// through a marker socket registered with the runtime first, whose inode
/// its fdinfo names.
struct Registrations {
    fdinfo: std::path::PathBuf,
    /// What the driver registered for itself, and the marker.
    own: usize,
    /// Registered while the runtime lives.
    _marker: tokio::net::UnixDatagram,
    _peer: std::os::unix::net::UnixDatagram,
}

impl Registrations {
    /// `None` if the epoll set cannot be found (no `/proc`): the retired
    /// runtime then counts as in use for as long as the process lives,
    /// rather than kill what a body made.
    fn of(runtime: &tokio::runtime::Runtime) -> Option<Registrations> {
        let _context = runtime.enter();
        let (marker, peer) = std::os::unix::net::UnixDatagram::pair().ok()?;
        marker.set_nonblocking(true).ok()?;
        let ino = nix::sys::stat::fstat(&marker).ok()?.st_ino;
        let marker = tokio::net::UnixDatagram::from_std(marker).ok()?;
        let needle = format!(" ino:{ino:x} ");
        // The epoll fd was made by `build`, just before the marker, so it
        // is most likely just below the marker's number: look there first,
        // then at every other fd (a process may hold thousands).
        let below = (0..marker.as_fd().as_raw_fd()).rev();
        let others = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok());
        for fd in below.chain(others) {
            let fdinfo = std::path::PathBuf::from(format!("/proc/self/fdinfo/{fd}"));
            // Only an epoll fd's fdinfo has `tfd:` lines.
            let Ok(text) = std::fs::read_to_string(&fdinfo) else {
                continue;
            };
            if text
                .lines()
                .any(|l| l.starts_with("tfd:") && l.contains(&needle))
            {
                let own = registered(&text);
                return Some(Registrations {
                    fdinfo,
                    own,
                    _marker: marker,
                    _peer: peer,
                });
            }
        }
        None
    }

    /// Whether more is registered than the driver's own.
    fn beyond_own(&self) -> bool {
        std::fs::read_to_string(&self.fdinfo).map_or(true, |text| registered(&text) > self.own)
    }
}

/// The number of fds an epoll set's fdinfo lists.
fn registered(fdinfo: &str) -> usize {
    fdinfo.lines().filter(|l| l.starts_with("tfd:")).count()
}

/// Whether `location` is in the namespace `ino` for a kind where that is
/// not home.
fn names_away(location: &Location, home: &Location, ino: u64) -> bool {
    tracked().any(|k| location.get(k) == ino && home.get(k) != ino)
}

/// Where a set runtime's threads live: a duplicated fd of the namespace of
/// every kind where the place is not the process's own.
pub(crate) struct Place {
    /// In setns order.
    namespaces: Vec<(NsKind, u64, OwnedFd)>,
    /// Where a thread must be once settled, if known exactly.
    expected: Option<Location>,
    /// What to name in a message.
    shown: String,
}

impl Place {
    /// The place `desired` of a call to `target` on `scheduler`'s workers.
    fn of(
        scheduler: &Scheduler,
        target: &SetRef<'_>,
        desired: &Location,
        home: &Location,
    ) -> Result<Place> {
        let mut namespaces = Vec::new();
        for kind in SETNS_ORDER {
            if !tracked().any(|k| k == kind) || desired.get(kind) == home.get(kind) {
                continue;
            }
            let Some(ns) = target.get(kind).or_else(|| scheduler.home.get(kind)) else {
                return Err(Error::Worker {
                    cause: WorkerCause::CannotReachHome,
                    reason: format!("no handle to the {kind} namespace of the call's place"),
                });
            };
            namespaces.push(duplicate(ns)?);
        }
        Ok(Place {
            namespaces,
            expected: Some(*desired),
            shown: shown(target.iter()),
        })
    }

    /// Every namespace of `set` of a kind a thread can be in (the caller
    /// checks first that a thread can enter them).
    pub(crate) fn of_set(set: &NsSet) -> Result<Place> {
        let mut namespaces = Vec::new();
        for kind in SETNS_ORDER {
            if let Some(ns) = set.get(kind) {
                if tracked().any(|k| k == kind) {
                    namespaces.push(duplicate(ns)?);
                }
            }
        }
        Ok(Place {
            namespaces,
            expected: None,
            shown: shown(set.iter()),
        })
    }

    /// Moves the calling thread into the place: one `setns` per kind it is
    /// not in, after `unshare(CLONE_FS)` when the place has a mount
    /// namespace (a thread shares root and cwd with the thread that
    /// started it until then).
    pub(crate) fn settle(&self) -> Result<()> {
        let here = Location::of_current_thread()?;
        for (kind, ino, fd) in &self.namespaces {
            if *kind == NsKind::Mnt {
                sys::unshare_fs().map_err(|errno| Error::Io {
                    op: "unshare(CLONE_FS) before entering",
                    kind: Some(*kind),
                    path: None,
                    errno,
                })?;
            }
            if here.get(*kind) != *ino {
                sys::setns(fd, *kind).map_err(|errno| Error::Io {
                    op: "entering",
                    kind: Some(*kind),
                    path: None,
                    errno,
                })?;
            }
        }
        if let Some(expected) = &self.expected {
            let there = Location::of_current_thread()?;
            if there != *expected {
                return Err(Error::Worker {
                    cause: WorkerCause::CannotReachHome,
                    reason: format!(
                        "the thread is still away in its {} namespaces",
                        there.differing(expected)
                    ),
                });
            }
        }
        Ok(())
    }

    /// [`settle`](Self::settle) for a thread of a tokio runtime, from its
    /// `on_thread_start`: a thread that cannot settle would run work meant
    /// for the place elsewhere, and tokio gives a start hook no way to
    /// refuse, so the process aborts with the reason.
    pub(crate) fn settle_or_abort(&self, what: &str) {
        if let Err(err) = self.settle() {
            abort(what, &self.shown, &err);
        }
    }
}

/// Moves the calling thread to the process's own namespaces (see
/// `nsguard::runtime::bring_thread_home`).
pub(crate) fn bring_home() -> Result<()> {
    let origin = origin::get()?;
    let mut namespaces = Vec::new();
    for kind in SETNS_ORDER {
        if let Some(ns) = origin.home.get(kind) {
            namespaces.push(duplicate(ns)?);
        }
    }
    Place {
        namespaces,
        expected: Some(origin.location),
        shown: "home".into(),
    }
    .settle()
}

/// Tells why a runtime thread could not settle, and aborts.
pub(crate) fn abort(what: &str, place: &str, err: &Error) -> ! {
    eprintln!(
        "nsguard: {what} {place} could not enter its namespaces ({err}); it would run its \
         work in the wrong namespaces, so the process aborts"
    );
    std::process::abort();
}

fn duplicate(ns: &Namespace) -> Result<(NsKind, u64, OwnedFd)> {
    let fd = ns.as_fd().try_clone_to_owned().map_err(|e| Error::Io {
        op: "duplicating the fd of",
        kind: Some(ns.kind()),
        path: ns.path().map(Into::into),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)),
    })?;
    Ok((ns.kind(), ns.id().ino(), fd))
}

fn shown<'a>(namespaces: impl Iterator<Item = &'a Namespace>) -> String {
    let ids: Vec<String> = namespaces.map(|ns| ns.id().to_string()).collect();
    format!("[{}]", ids.join(", "))
}
