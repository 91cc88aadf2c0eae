//! [`Error`]: everything that can go wrong, with what a person needs to act.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::errno::Errno;
use crate::id::NsId;
use crate::kind::{NsKind, NsKinds, ParseKindError};

/// Another error, kept in an [`Error`] (which is `Clone`) and returned by
/// its [`source`](std::error::Error::source).
///
/// Boxed, then shared: an `Arc<dyn Error>` is itself an error type, so
/// `source` would return the `Arc` and downcasting to the original type
/// would fail; `Box<dyn Error>` is not one, so `source` returns the boxed
/// error itself (`err.source()?.downcast_ref::<std::io::Error>()` works).
pub type SharedError = Arc<Box<dyn std::error::Error + Send + Sync>>;

/// `Result` with nsguard's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from nsguard.
///
/// Every variant carries what a person needs to act on it: the path, the
/// namespace kind or id, the errno, and its message says what to do. Match
/// on the variant to tell the cases apart; [`errno`](Error::errno),
/// [`ns_kind`](Error::ns_kind) and [`path`](Error::path) read the common
/// fields. Converts into [`std::io::Error`] with a matching
/// [`io::ErrorKind`] (the nsguard error stays reachable through
/// `get_ref`/`into_inner`). Where another error caused it (a failed spawn, a
/// pool's setup hook), [`source`](std::error::Error::source) returns that
/// error, as it was.
///
/// Errors are `Clone` (a pool hands the error that stopped it to every
/// caller), so the errors they carry are kept in an `Arc`
/// ([`SharedError`]).
///
/// Error numbers are nsguard's own [`Errno`], not a dependency's type: nix,
/// which nsguard uses inside, can then move to a new major version without
/// a breaking change here, and users pick their own version of it (or
/// rustix, or libc) and convert with [`Errno::raw`].
///
/// # Examples
///
/// ```
/// use nsguard::{Errno, Error, Namespace, NsKind};
///
/// // /etc/hostname is a file, so /etc/hostname/net cannot exist: ENOTDIR.
/// match Namespace::open("/etc/hostname/net", NsKind::Net) {
///     Err(Error::NotFound { path, errno, .. }) => {
///         assert_eq!(path, std::path::Path::new("/etc/hostname/net"));
///         assert_eq!(errno, Errno::ENOTDIR);
///     }
///     other => panic!("expected NotFound, got {other:?}"),
/// }
///
/// let err = Namespace::open("/etc/hostname", NsKind::Uts).unwrap_err();
/// assert_eq!(err.ns_kind(), Some(NsKind::Uts));
/// assert_eq!(err.path(), Some(std::path::Path::new("/etc/hostname")));
/// // Its message says what the file is and what was expected:
/// assert!(err.to_string().contains("is not a namespace file: it is a regular file"));
/// // and it converts into an io::Error for code that returns those:
/// let io = std::io::Error::from(err);
/// assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path does not exist (`ENOENT`), or a directory in it is not
    /// one (`ENOTDIR`).
    #[error(
        "{kind} namespace not found: {} does not exist{}",
        path.display(),
        not_found_hint(path)
    )]
    #[non_exhaustive]
    NotFound {
        /// The kind that was asked for.
        kind: NsKind,
        /// The path that does not exist.
        path: PathBuf,
        /// The errno: `ENOENT` or `ENOTDIR`.
        errno: Errno,
    },

    /// The process asked for by pid does not exist (any more).
    #[error(
        "no process with pid {pid}: cannot open {}; the process has exited or never existed",
        path.display()
    )]
    #[non_exhaustive]
    NoSuchProcess {
        /// The pid.
        pid: u32,
        /// The kind that was asked for.
        kind: NsKind,
        /// The path that was tried.
        path: PathBuf,
    },

    /// The `/proc` mounted does not show the calling process: it belongs to
    /// a pid namespace that the process is neither in nor above (for
    /// instance after entering only the mount namespace of a container,
    /// whose `/proc` is the container's). Numbered `/proc` paths would name
    /// other processes there, so nothing was read.
    #[error(
        "{} does not exist: the /proc mounted here belongs to another pid namespace, which \
         does not show this process; mount a /proc of this process's pid namespace \
         (`unshare --mount-proc`, or `mount -t proc proc /proc` in a mount namespace of its own)",
        path.display()
    )]
    #[non_exhaustive]
    ForeignProc {
        /// The path that did not resolve, e.g. `/proc/self`.
        path: PathBuf,
    },

    /// A pid that can never name a process: zero, or over `i32::MAX` (the
    /// kernel's pids are positive `i32`s).
    #[error("invalid pid {pid}: a process id is between 1 and 2147483647")]
    #[non_exhaustive]
    InvalidPid {
        /// The pid given.
        pid: u32,
    },

    /// The caller lacks the permission or capability the operation needs
    /// (`EPERM`, `EACCES`).
    #[error(
        "permission denied: {op}{target} needs {needs} ({errno}); {fix}",
        target = io_subject(*kind, path.as_deref())
    )]
    #[non_exhaustive]
    PermissionDenied {
        /// What was attempted: `"opening"`, `"entering"`.
        op: &'static str,
        /// The kind of the namespace involved, if a namespace was (not for
        /// the directory of a bind mount).
        kind: Option<NsKind>,
        /// The path involved, if any.
        path: Option<PathBuf>,
        /// The capability or access right that is missing, e.g.
        /// `CAP_SYS_ADMIN`, or `CAP_SYS_ADMIN and CAP_SYS_CHROOT` for mnt.
        needs: &'static str,
        /// The errno the kernel returned.
        errno: Errno,
        /// What to do about it, from where the caller stands.
        fix: &'static str,
    },

    /// The path is a namespace, but not a bind mount of one: there is
    /// nothing to unpersist; nothing was done.
    #[error(
        "{} is a {kind} namespace but not a bind mount of one (it is the kernel's own \
         link under /proc, or reached through another mount), so there is nothing to \
         unpersist; nothing was done; pass the path that persist or `ip netns add` made",
        path.display()
    )]
    #[non_exhaustive]
    NotPersisted {
        /// The kind asked for.
        kind: NsKind,
        /// The path.
        path: PathBuf,
    },

    /// A directory to read namespaces from ([`NsSet::from_dir`]) is missing
    /// or is not a directory.
    ///
    /// [`NsSet::from_dir`]: crate::NsSet::from_dir
    #[error(
        "{} is not a directory of namespace files ({found}); expected a directory such as \
         /proc/<pid>/ns, or a runtime's directory of bind mounts named net, uts, ipc…",
        path.display()
    )]
    #[non_exhaustive]
    NotANamespaceDir {
        /// The path given.
        path: PathBuf,
        /// What it is instead, e.g. `"it does not exist"`, `"a regular
        /// file"`.
        found: &'static str,
        /// The errno of opening it: `ENOENT` or `ENOTDIR`.
        errno: Errno,
    },

    /// The name of a namespace was removed, but threads of this process are
    /// still inside it and keep it alive: threads a body or a guard's scope
    /// started inside (a new thread inherits the namespaces of the thread
    /// that creates it). They stay inside until they exit.
    #[error(
        "{} was removed, but threads of this process are still inside the namespace and keep \
         it alive: {}; they were started inside (by a body, or while a guard was alive) and \
         stay there until they exit; see nsguard::stray_threads",
        path.display(),
        threads.join(", ")
    )]
    #[non_exhaustive]
    ThreadsInside {
        /// The path that was removed.
        path: PathBuf,
        /// The threads, as `tid (name)`.
        threads: Vec<String>,
    },

    /// The path exists but is not a namespace file (nsfs).
    #[error(
        "{} is not a namespace file: it is {found}; expected a {kind} namespace such as \
         /proc/<pid>/ns/{kind}, or a bind mount of one",
        path.display()
    )]
    #[non_exhaustive]
    NotANamespace {
        /// The kind that was asked for.
        kind: NsKind,
        /// The path.
        path: PathBuf,
        /// What the file is instead, e.g. `"a regular file"`, `"a directory"`.
        found: &'static str,
    },

    /// The path is a namespace, but of another kind.
    #[error(
        "{} is a {found} namespace, not a {expected} namespace; open it as NsKind::{found:?} \
         or pass the path of a {expected} namespace",
        path.display()
    )]
    #[non_exhaustive]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// The kind that was asked for.
        expected: NsKind,
        /// The kind the file is.
        found: NsKind,
    },

    /// The name or path is already taken.
    #[error("{} already exists; pick another name, or delete it first", path.display())]
    #[non_exhaustive]
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },

    /// A namespace name (as used by `ip netns`) that cannot name a file.
    #[error("invalid namespace name {name:?}: {reason}")]
    #[non_exhaustive]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A string that is not the proc name of a namespace kind (from
    /// [`ParseKindError`], which `NsKind::from_str` returns).
    #[error(
        "unknown namespace kind {name:?}: expected one of cgroup, ipc, mnt, net, pid, time, \
         user, uts"
    )]
    #[non_exhaustive]
    UnknownKind {
        /// The string given.
        name: String,
    },

    /// The running kernel has no namespaces of this kind (it is too old,
    /// or was built without them); nothing was done. Which kinds a kernel
    /// has is probed once per process, from the files in `/proc/self/ns`:
    /// [`NsKinds::supported`](crate::NsKinds::supported) is every kind it
    /// has.
    #[error(
        "this kernel has no {kind} namespaces (/proc/self/ns/{kind} does not exist): they need \
         {needs}; nothing was done; leave {kind} out, or use NsKinds::supported() for every \
         kind this kernel has"
    )]
    #[non_exhaustive]
    KindUnsupported {
        /// The kind the kernel lacks.
        kind: NsKind,
        /// What a kernel needs to have it, e.g. `"Linux 5.6 or later built
        /// with CONFIG_TIME_NS"`.
        needs: &'static str,
    },

    /// A thread cannot switch to this kind and back; nothing was changed.
    #[error("cannot enter a {kind} namespace on a thread: {reason}; instead, {instead}")]
    #[non_exhaustive]
    UnsupportedOnThread {
        /// The kind refused.
        kind: NsKind,
        /// The kernel rule that makes it impossible.
        reason: &'static str,
        /// What to use instead.
        instead: &'static str,
    },

    /// Entering would be one-way: the thread could never switch back to the
    /// namespace it is leaving, because that namespace is owned by a user
    /// namespace outside the caller's (e.g. the host's, under `unshare -Ur`).
    /// Nothing was changed.
    #[error(
        "cannot enter {target} on this thread and come back: the thread's current {kind} \
         namespace {here} is owned by a user namespace outside the caller's, so setns back \
         to it would fail with EPERM; nothing was changed; run the code on a worker with \
         NsSet::run or #[in_namespace], or spawn a process with CommandExt::spawn_in",
        kind = here.kind()
    )]
    #[non_exhaustive]
    NoWayBack {
        /// The namespace that was to be entered.
        target: NsId,
        /// The namespace the thread is in and could not return to.
        here: NsId,
    },

    /// `setns(2)` into the namespace failed. Any kind already switched by
    /// the same call was switched back: the thread is where it was.
    #[error(
        "entering {} failed: setns returned {errno}{}",
        id_and_path(*ns, path.as_deref()),
        setns_hint(ns.kind(), *errno)
    )]
    #[non_exhaustive]
    Enter {
        /// The namespace that could not be entered.
        ns: NsId,
        /// The path it was opened from, if any.
        path: Option<PathBuf>,
        /// The errno `setns` returned.
        errno: Errno,
    },

    /// Switching the thread back to its original namespace failed. The
    /// thread is now poisoned: see [`is_poisoned`](crate::is_poisoned).
    #[error(
        "restoring the thread to {ns} failed: setns returned {errno}; the thread is now \
         poisoned and every later nsguard call on it fails"
    )]
    #[non_exhaustive]
    Restore {
        /// The namespace the thread could not return to.
        ns: NsId,
        /// The errno `setns` returned.
        errno: Errno,
    },

    /// The calling thread is poisoned: an earlier restore failed or a guard
    /// was dropped out of order, so its namespaces are not what they should
    /// be. Nothing was done. Let the thread finish; do not run more namespace
    /// work on it.
    #[error("this thread is poisoned, nsguard will not use it: {reason}")]
    #[non_exhaustive]
    Poisoned {
        /// What poisoned the thread.
        reason: String,
    },

    /// This kind of namespace cannot be created this way; nothing was
    /// created.
    #[error("cannot create a {kind} namespace this way: {reason}; instead, {instead}")]
    #[non_exhaustive]
    CannotCreate {
        /// The kind refused.
        kind: NsKind,
        /// Why.
        reason: &'static str,
        /// What to do instead.
        instead: &'static str,
    },

    /// The kernel refused to create namespaces; nothing was created.
    #[error("creating new {kinds} namespaces failed at {step}: {errno}{}", create_hint(*errno))]
    #[non_exhaustive]
    Create {
        /// The kinds asked for.
        kinds: NsKinds,
        /// The step that failed, e.g. `"unshare"`.
        step: &'static str,
        /// The errno.
        errno: Errno,
    },

    /// A process could not be started (the program does not exist, is not
    /// executable…). Its namespaces were entered, or it failed before.
    #[error("spawning `{program}` failed")]
    #[non_exhaustive]
    Spawn {
        /// The program.
        program: String,
        /// The [`io::Error`] that
        /// [`Command::spawn`](std::process::Command::spawn) returned, as it
        /// was (`downcast_ref::<io::Error>()`, or through
        /// [`source`](std::error::Error::source)); [`errno`](Error::errno)
        /// is its OS error, if it has one.
        #[source]
        source: SharedError,
    },

    /// A [`Pool`](crate::Pool)'s setup hook failed inside a new set; the
    /// set was dropped.
    #[error("the pool's setup hook {reason}")]
    #[non_exhaustive]
    Setup {
        /// What happened: `"returned an error"` (the error is the
        /// [`source`](std::error::Error::source)), or that it panicked,
        /// with the panic's message.
        reason: String,
        /// The error the hook returned, as it was.
        #[source]
        source: Option<SharedError>,
    },

    /// The executor could not run the call on a worker; [`cause`] says why
    /// in a form to match on, `reason` in words. (No other error causes
    /// it: a thread that cannot be started is [`Error::Thread`], a
    /// namespace a worker cannot enter is [`Error::Enter`].)
    ///
    /// [`cause`]: WorkerCause
    #[error("no worker could run the call: {reason}")]
    #[non_exhaustive]
    Worker {
        /// Why, as a value to match on.
        cause: WorkerCause,
        /// What went wrong, and what to do about it.
        reason: String,
    },

    /// A socket could not be made, bound or connected inside a set's
    /// namespaces ([`NsSet::bind_tcp`](crate::NsSet::bind_tcp) and the
    /// other socket helpers).
    #[error("{op} {addr} inside {namespaces} failed: {reason}")]
    #[non_exhaustive]
    Socket {
        /// What was attempted, e.g. `"binding a TCP listener to"`.
        op: &'static str,
        /// The address (or socket type) involved, as given.
        addr: String,
        /// The namespaces of the set, e.g. `net:[4026532291] (/run/netns/blue)`.
        namespaces: String,
        /// The errno (`EINVAL` where the failure had none, such as an
        /// address that does not parse).
        errno: Errno,
        /// The system's description of the failure.
        reason: String,
    },

    /// A thread nsguard needed could not be started; nothing ran.
    #[error("cannot start a thread to {purpose}: {errno}{}", thread_hint(*errno))]
    #[non_exhaustive]
    Thread {
        /// What the thread was for, e.g. `"run the call on a worker"`.
        purpose: &'static str,
        /// The errno thread creation failed with (`EAGAIN`: a limit such as
        /// a cgroup's `pids.max`; `EINVAL`: the calling thread entered
        /// another pid namespace).
        errno: Errno,
    },

    /// [`NsSet::namespace`](crate::NsSet::namespace) or
    /// [`NsSet::only`](crate::NsSet::only) found no such namespace in the set.
    #[error("{}", not_in_set(*wanted, *has))]
    #[non_exhaustive]
    NotInSet {
        /// The kind asked for; `None` for `only`, which wants exactly one.
        wanted: Option<NsKind>,
        /// The kinds the set has.
        has: NsKinds,
    },

    /// The closure given to [`NsSet::run`](crate::NsSet::run) (or
    /// `run_async`) returns code: a future (an `async` block or the call of
    /// an `async fn`) or a closure. Its value would be polled or called on
    /// the caller's thread, outside the namespaces; nothing was run.
    #[error(
        "the closure given to {call} returns `{returned}`, a future or a closure: it would be \
         polled or called on the caller's thread, outside the namespaces. For async code use \
         NsSet::run_future(async {{ .. }}) or an #[in_namespace] async fn, which poll it \
         inside; from {call} return values, not code"
    )]
    #[non_exhaustive]
    ReturnsCode {
        /// `"NsSet::run"`, `"Executor::run"`, `"NsSet::run_async"`...
        call: &'static str,
        /// The type the closure returns, as `std::any::type_name` gives it.
        returned: &'static str,
    },

    /// An [`Executor`](crate::Executor) setting is out of range, or a
    /// [`Command`](std::process::Command) setting cannot be honoured;
    /// nothing was started.
    #[error("invalid setting `{setting}`: {reason}")]
    #[non_exhaustive]
    InvalidConfig {
        /// The setting, e.g. `"max_workers"`.
        setting: &'static str,
        /// Why it is refused, and what to use instead.
        reason: String,
    },

    /// Another system call failed.
    #[error("{op}{} failed: {errno}", io_subject(*kind, path.as_deref()))]
    #[non_exhaustive]
    Io {
        /// What was attempted, e.g. `"opening"`, `"inspecting"`.
        op: &'static str,
        /// The kind of the namespace involved, if a namespace was (not for
        /// a pipe, or a thread's status file).
        kind: Option<NsKind>,
        /// The path involved, if any.
        path: Option<PathBuf>,
        /// The errno.
        errno: Errno,
    },
}

/// Why the executor could not run a call: the cause of an
/// [`Error::Worker`].
///
/// ```
/// use nsguard::{Error, WorkerCause};
///
/// fn must_build_own_executor(err: &Error) -> bool {
///     // A forked child must build an executor of its own.
///     matches!(err, Error::Worker { cause: WorkerCause::Forked, .. })
/// }
/// let err = nsguard::Namespace::of_pid(0, nsguard::NsKind::Net).unwrap_err();
/// assert!(!must_build_own_executor(&err));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerCause {
    /// The executor was shut down (its last handle was dropped) before the
    /// call could run.
    ShutDown,
    /// The executor, or the call's future, was made before `fork(2)` (or
    /// a `clone(2)` without `CLONE_VM`) in the parent process, whose
    /// threads the child does not have.
    Forked,
    /// nsguard's threads cannot be started from the calling thread: it is
    /// inside a guard, has a root or cwd of its own, or other credentials
    /// than the main thread. A call from another thread may succeed.
    OriginRefused,
    /// nsguard's origin thread, which starts every worker, died or is gone.
    OriginGone,
    /// A worker could not reach, or return to, the executor's home
    /// namespaces.
    CannotReachHome,
    /// A worker was still inside a namespace after the program dropped its
    /// last handle to it, past the time allowed (`netns::delete`).
    StillInside,
    /// The call was dropped before a worker could run it.
    Dropped,
    /// An `#[in_namespace] async fn`'s future was polled after it had
    /// completed.
    PolledAfterCompletion,
}

impl Error {
    /// The errno behind this error, if a system call failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::PermissionDenied { errno, .. }
            | Error::Enter { errno, .. }
            | Error::Restore { errno, .. }
            | Error::Create { errno, .. }
            | Error::Thread { errno, .. }
            | Error::Socket { errno, .. }
            | Error::NotFound { errno, .. }
            | Error::NotANamespaceDir { errno, .. }
            | Error::Io { errno, .. } => Some(*errno),
            Error::NoSuchProcess { .. } => Some(Errno::ENOENT),
            Error::Spawn { source, .. } => source.downcast_ref().and_then(Errno::of_io),
            _ => None,
        }
    }

    /// The namespace kind involved, if any (for
    /// [`WrongKind`](Error::WrongKind), the kind asked for).
    ///
    /// Named so as not to be taken for [`io::Error::kind`]: the
    /// [`io::ErrorKind`] this error converts to is
    /// [`io_kind`](Error::io_kind).
    pub fn ns_kind(&self) -> Option<NsKind> {
        match self {
            Error::NotFound { kind, .. }
            | Error::NoSuchProcess { kind, .. }
            | Error::NotANamespace { kind, .. }
            | Error::UnsupportedOnThread { kind, .. }
            | Error::KindUnsupported { kind, .. }
            | Error::CannotCreate { kind, .. }
            | Error::NotPersisted { kind, .. } => Some(*kind),
            Error::Io { kind, .. } | Error::PermissionDenied { kind, .. } => *kind,
            Error::WrongKind { expected, .. } => Some(*expected),
            Error::Enter { ns, .. } | Error::Restore { ns, .. } => Some(ns.kind()),
            Error::NoWayBack { here, .. } => Some(here.kind()),
            _ => None,
        }
    }

    /// The path involved, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::NotFound { path, .. }
            | Error::NoSuchProcess { path, .. }
            | Error::NotANamespace { path, .. }
            | Error::AlreadyExists { path }
            | Error::ForeignProc { path }
            | Error::NotPersisted { path, .. }
            | Error::NotANamespaceDir { path, .. }
            | Error::ThreadsInside { path, .. }
            | Error::WrongKind { path, .. } => Some(path),
            Error::PermissionDenied { path, .. }
            | Error::Enter { path, .. }
            | Error::Io { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// The [`io::ErrorKind`] this error converts to.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::NotFound { .. } | Error::NoSuchProcess { .. } | Error::ForeignProc { .. } => {
                io::ErrorKind::NotFound
            }
            Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::NotANamespaceDir { errno, .. } if *errno == Errno::ENOENT => {
                io::ErrorKind::NotFound
            }
            Error::NotANamespace { .. }
            | Error::NotANamespaceDir { .. }
            | Error::NotPersisted { .. }
            | Error::WrongKind { .. }
            | Error::InvalidName { .. }
            | Error::UnknownKind { .. }
            | Error::InvalidPid { .. }
            | Error::NotInSet { .. }
            | Error::ReturnsCode { .. } => io::ErrorKind::InvalidInput,
            Error::UnsupportedOnThread { .. }
            | Error::KindUnsupported { .. }
            | Error::CannotCreate { .. }
            | Error::NoWayBack { .. } => io::ErrorKind::Unsupported,
            Error::Enter { errno, .. }
            | Error::Restore { errno, .. }
            | Error::Create { errno, .. }
            | Error::Thread { errno, .. }
            | Error::Socket { errno, .. }
            | Error::Io { errno, .. } => io::Error::from(*errno).kind(),
            Error::Spawn { source, .. } => source
                .downcast_ref::<io::Error>()
                .map_or(io::ErrorKind::Other, io::Error::kind),
            Error::InvalidConfig { .. } => io::ErrorKind::InvalidInput,
            Error::Poisoned { .. }
            | Error::Worker { .. }
            | Error::Setup { .. }
            | Error::ThreadsInside { .. } => io::ErrorKind::Other,
        }
    }

    pub(crate) fn enter(ns: NsId, path: Option<&Path>, errno: Errno) -> Error {
        if matches!(errno, Errno::EPERM | Errno::EACCES) {
            return Error::PermissionDenied {
                op: "entering",
                kind: Some(ns.kind()),
                path: path.map(Path::to_path_buf),
                needs: ns.kind().setns_capability(),
                errno,
                fix: fix::ENTER,
            };
        }
        Error::Enter {
            ns,
            path: path.map(Path::to_path_buf),
            errno,
        }
    }
}

/// What to do about a missing privilege, by situation: the `fix` of
/// [`Error::PermissionDenied`].
pub(crate) mod fix {
    /// Entering or inspecting a namespace.
    pub(crate) const ENTER: &str = "run as root; inside a user namespace (`unshare -U`, a \
        rootless container) only the namespaces that user namespace owns can be entered";
    /// Opening another process's namespace files.
    pub(crate) const PTRACE: &str = "run as root, or as the user the process runs as";
    /// Opening a file by its path.
    pub(crate) const FILE: &str = "make the file readable to this process, or run as root";
    /// Creating namespaces.
    pub(crate) const CREATE: &str = "run as root, or create a user namespace with them \
        (`NsKind::User | ...`), which needs no privilege and grants it over the others";
    /// Writing the id maps of a new user namespace.
    pub(crate) const MAPS: &str = "map only the caller's own uid and gid (the default), or run \
        as root";
    /// A bind mount, or a file beside one, in the initial user namespace.
    pub(crate) const MOUNT: &str = "run as root";
    /// The same from inside a user namespace: what is missing is a mount
    /// namespace that user namespace owns.
    pub(crate) const MOUNT_IN_USER_NS: &str = "this process is inside a user namespace, which \
        does not own its mount namespace: give it a mount namespace of its own (`unshare \
        -Urm`), or run as root in the initial user namespace";
}

impl From<ParseKindError> for Error {
    fn from(err: ParseKindError) -> Error {
        Error::UnknownKind {
            name: err.into_name(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.io_kind(), err)
    }
}

fn kind_and_path(kind: NsKind, path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("{} (a {kind} namespace)", p.display()),
        None => format!("a {kind} namespace"),
    }
}

/// What an operation was done on, with a leading space; empty if nothing
/// is known.
fn io_subject(kind: Option<NsKind>, path: Option<&Path>) -> String {
    match (kind, path) {
        (Some(kind), path) => format!(" {}", kind_and_path(kind, path)),
        (None, Some(path)) => format!(" {}", path.display()),
        (None, None) => String::new(),
    }
}

fn id_and_path(ns: NsId, path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("{ns} (opened from {})", p.display()),
        None => ns.to_string(),
    }
}

fn not_found_hint(path: &Path) -> &'static str {
    if path.starts_with("/proc") {
        "; is /proc mounted, and does this kernel support the kind?"
    } else if path.starts_with("/run/netns") || path.starts_with("/var/run/netns") {
        "; `ip netns list` shows the named network namespaces"
    } else {
        ""
    }
}

fn thread_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EAGAIN => {
            "; a limit on threads was reached (the cgroup's pids.max, RLIMIT_NPROC, or \
             /proc/sys/kernel/threads-max)"
        }
        Errno::EINVAL => {
            "; the calling thread has entered another pid namespace (a thread whose \
             pid_for_children differs from its own pid namespace cannot create threads)"
        }
        _ => "",
    }
}

fn create_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOSPC => "; a limit in /proc/sys/user/max_*_namespaces was reached",
        Errno::EINVAL => "; this kernel may lack the kind (CONFIG_*_NS)",
        _ => "",
    }
}

fn setns_hint(kind: NsKind, errno: Errno) -> &'static str {
    match (kind, errno) {
        (NsKind::Pid, Errno::EINVAL) => {
            "; a thread can only enter a pid namespace that is a descendant of its own"
        }
        (NsKind::Mnt, Errno::EINVAL) => {
            "; a thread that shares its filesystem attributes (CLONE_FS) cannot change mount \
             namespace"
        }
        (NsKind::User, Errno::EINVAL) => {
            "; a multithreaded process cannot enter a user namespace, nor can a thread re-enter \
             its own"
        }
        (NsKind::Time, Errno::EUSERS) => "; a multithreaded process cannot enter a time namespace",
        (_, Errno::ENOSPC) => "; the target's nesting depth or namespace limit was reached",
        _ => "",
    }
}

fn not_in_set(wanted: Option<NsKind>, has: NsKinds) -> String {
    let has = if has.is_empty() {
        "none".to_owned()
    } else {
        has.to_string()
    };
    match wanted {
        Some(kind) => format!(
            "the set has no {kind} namespace (it has: {has}); add one with NsSet::with or \
             NsSet::insert"
        ),
        None => format!(
            "NsSet::only wants a set of exactly one kind; this one has: {has}; use \
             NsSet::namespace(kind) to pick one"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_the_capability() {
        let id = NsId::new(NsKind::Mnt, 4, 99);
        let err = Error::enter(id, Some(Path::new("/run/x")), Errno::EPERM);
        let msg = err.to_string();
        assert!(msg.contains("CAP_SYS_ADMIN"), "{msg}");
        assert!(msg.contains("CAP_SYS_CHROOT"), "{msg}");
        assert!(msg.contains("/run/x"), "{msg}");
        assert!(msg.contains("EPERM"), "{msg}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::PermissionDenied);

        let err = Error::enter(NsId::new(NsKind::Net, 4, 98), None, Errno::EPERM);
        let msg = err.to_string();
        assert!(
            msg.contains("CAP_SYS_ADMIN") && !msg.contains("CHROOT"),
            "{msg}"
        );
    }

    #[test]
    fn enter_errors_name_the_namespace_path_and_errno() {
        let id = NsId::new(NsKind::Pid, 4, 77);
        let err = Error::enter(id, Some(Path::new("/tmp/p")), Errno::EINVAL);
        let msg = err.to_string();
        assert!(msg.contains("pid:[77]") && msg.contains("/tmp/p"), "{msg}");
        assert!(
            msg.contains("EINVAL") && msg.contains("descendant"),
            "{msg}"
        );
        assert_eq!(err.errno(), Some(Errno::EINVAL));
        assert_eq!(err.ns_kind(), Some(NsKind::Pid));
        assert_eq!(err.path(), Some(Path::new("/tmp/p")));
    }

    #[test]
    fn io_errors_name_a_kind_only_where_there_is_one() {
        let err = Error::Io {
            op: "reading",
            kind: None,
            path: Some("/proc/thread-self/status".into()),
            errno: Errno::EACCES,
        };
        assert_eq!(err.ns_kind(), None);
        assert_eq!(
            err.to_string(),
            "reading /proc/thread-self/status failed: EACCES: Permission denied"
        );
        let err = Error::Io {
            op: "opening",
            kind: Some(NsKind::Net),
            path: None,
            errno: Errno::EMFILE,
        };
        assert_eq!(err.ns_kind(), Some(NsKind::Net));
        assert!(err
            .to_string()
            .starts_with("opening a net namespace failed"));
    }

    #[test]
    fn a_kind_that_does_not_parse_converts_into_unknown_kind() {
        let parse = |s: &str| -> Result<NsKind> { Ok(s.parse::<NsKind>()?) };
        let err = parse("network").unwrap_err();
        assert!(matches!(&err, Error::UnknownKind { name } if name == "network"));
        assert!(err
            .to_string()
            .contains("cgroup, ipc, mnt, net, pid, time, user, uts"));
    }

    #[test]
    fn converts_into_io_error_keeping_the_original() {
        let err = Error::NotFound {
            kind: NsKind::Net,
            path: "/run/netns/x".into(),
            errno: Errno::ENOENT,
        };
        let io_err = io::Error::from(err);
        assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
        let inner = io_err.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert!(matches!(inner, Some(Error::NotFound { .. })));
        assert!(io_err.to_string().contains("ip netns list"));
    }
}
