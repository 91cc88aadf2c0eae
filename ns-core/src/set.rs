//! [`NsSet`]: at most one namespace per kind.

use std::fmt;
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::{Error, Result};
use crate::executor::{Executor, Target};
use crate::guard::NsGuard;
use crate::kind::{NsKind, NsKinds};
use crate::namespace::{open_error, Namespace, ProcDir};
use crate::{sys, thread_state};

/// A set of namespaces, at most one of each kind: the namespaces some code
/// should run in.
///
/// Build one from handles ([`with`](Self::with), `From<Namespace>`,
/// `collect`), or read a whole set at once from a process
/// ([`of_pid`](Self::of_pid)), a directory ([`from_dir`](Self::from_dir)) or
/// the calling thread ([`current`](Self::current)). Then switch the calling
/// thread into it with [`enter`](Self::enter).
///
/// Iteration yields the namespaces in the order of [`NsKind::ALL`].
///
/// ```no_run
/// use nsguard::{Namespace, NsKind, NsSet};
///
/// let set = NsSet::new()
///     .with(Namespace::named("blue")?)
///     .with(Namespace::open("/proc/1234/ns/uts", NsKind::Uts)?);
/// assert_eq!(set.kinds(), NsKind::Net | NsKind::Uts);
///
/// // or every namespace of a container's process:
/// let container = NsSet::of_pid(1234, NsKind::Net | NsKind::Uts | NsKind::Ipc)?;
/// # Ok::<(), nsguard::Error>(())
/// ```
#[derive(Default)]
pub struct NsSet {
    slots: [Option<Namespace>; NsKind::COUNT],
}

/// The order in which namespaces are entered, as nsenter(1) does: user
/// first (it grants the capabilities the others need), mnt late (it changes
/// how later paths resolve), time last.
pub(crate) const SETNS_ORDER: [NsKind; NsKind::COUNT] = [
    NsKind::User,
    NsKind::Cgroup,
    NsKind::Ipc,
    NsKind::Uts,
    NsKind::Net,
    NsKind::Pid,
    NsKind::Mnt,
    NsKind::Time,
];

impl NsSet {
    /// An empty set.
    pub fn new() -> NsSet {
        NsSet::default()
    }

    /// The namespaces of `kinds` that the **calling thread** is in: see
    /// [`Namespace::current`].
    ///
    /// # Errors
    ///
    /// The errors of [`Namespace::current`]: [`Error::KindUnsupported`]
    /// if the running kernel lacks one of `kinds` (checked before anything is
    /// opened). For every kind there is, pass [`NsKinds::supported`] rather
    /// than [`NsKinds::ALL`]: time namespaces need Linux 5.6.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{NsKind, NsKinds, NsSet};
    ///
    /// let here = NsSet::current(NsKinds::supported())?;
    /// assert_eq!(here.kinds(), NsKinds::supported());
    /// let net_only = NsSet::current(NsKind::Net)?;
    /// assert_eq!(net_only.get(NsKind::Net), here.get(NsKind::Net));
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn current(kinds: impl Into<NsKinds>) -> Result<NsSet> {
        thread_state::check()?;
        let kinds = kinds.into();
        Error::check_supported(kinds)?;
        kinds
            .into_iter()
            .map(Namespace::current_unchecked)
            .collect()
    }

    /// The namespaces of `kinds` of process `pid`, from `/proc/<pid>/ns`.
    ///
    /// `/proc/<pid>` is opened once and every namespace is read relative to
    /// it, so all of them belong to the same process even if it exits and
    /// its pid is reused meanwhile.
    ///
    /// # Errors
    ///
    /// The errors of [`Namespace::of_pid`]; [`Error::KindUnsupported`] if
    /// the running kernel lacks one of `kinds`, before anything is opened
    /// ([`NsKinds::supported`] is every kind it has).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{NsKind, NsSet};
    ///
    /// let me = NsSet::of_pid(std::process::id(), NsKind::Net | NsKind::Ipc)?;
    /// assert_eq!(me.len(), 2);
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn of_pid(pid: u32, kinds: impl Into<NsKinds>) -> Result<NsSet> {
        thread_state::check()?;
        let kinds = kinds.into();
        Error::check_supported(kinds)?;
        let Some(first) = kinds.iter().next() else {
            return Ok(NsSet::new());
        };
        let proc = ProcDir::open(pid, first)?;
        kinds.into_iter().map(|kind| proc.namespace(kind)).collect()
    }

    /// The namespaces of `kinds` from a directory holding one file per kind,
    /// named by [`NsKind::proc_name`]: `/proc/<pid>/ns`, or a directory of
    /// bind mounts (`net`, `uts`, …) as container runtimes keep them.
    ///
    /// # Errors
    ///
    /// [`Error::KindUnsupported`] if the running kernel lacks one of
    /// `kinds`, before anything is opened; [`Error::NotFound`] if the
    /// directory or the file of a kind is missing, and the errors of
    /// [`Namespace::open`] for each file.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Error, NsKind, NsSet};
    ///
    /// // /proc/<pid>/ns is such a directory.
    /// let kinds = NsKind::Net | NsKind::Uts;
    /// let main = NsSet::from_dir("/proc/self/ns", kinds)?;
    /// assert_eq!(main, NsSet::of_pid(std::process::id(), kinds)?);
    ///
    /// // /proc/self/net is a directory, not a network namespace.
    /// let err = NsSet::from_dir("/proc/self", NsKind::Net).unwrap_err();
    /// assert!(matches!(err, Error::NotANamespace { found: "a directory", .. }));
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>, kinds: impl Into<NsKinds>) -> Result<NsSet> {
        thread_state::check()?;
        let dir = dir.as_ref();
        let kinds = kinds.into();
        Error::check_supported(kinds)?;
        let Some(first) = kinds.iter().next() else {
            return Ok(NsSet::new());
        };
        let dir_fd = sys::open_dir(dir).map_err(|errno| open_error(first, dir, errno))?;
        kinds
            .into_iter()
            .map(|kind| {
                let path = dir.join(kind.proc_name());
                let fd = sys::open_at(dir_fd.as_fd(), kind.proc_name())
                    .map_err(|errno| open_error(kind, &path, errno))?;
                crate::namespace::validate_at(kind, fd, &path)
            })
            .collect()
    }

    /// The set with `ns` added, replacing the namespace of the same kind if
    /// there was one.
    #[must_use]
    pub fn with(mut self, ns: Namespace) -> NsSet {
        self.insert(ns);
        self
    }

    /// Adds `ns`; returns the namespace of the same kind it replaces.
    pub fn insert(&mut self, ns: Namespace) -> Option<Namespace> {
        self.slots[ns.kind().index()].replace(ns)
    }

    /// Removes and returns the namespace of `kind`.
    pub fn remove(&mut self, kind: NsKind) -> Option<Namespace> {
        self.slots[kind.index()].take()
    }

    /// The namespace of `kind`, if the set has one.
    pub fn get(&self, kind: NsKind) -> Option<&Namespace> {
        self.slots[kind.index()].as_ref()
    }

    /// Whether the set has a namespace of `kind`.
    pub fn contains(&self, kind: NsKind) -> bool {
        self.get(kind).is_some()
    }

    /// The kinds the set has a namespace of.
    pub fn kinds(&self) -> NsKinds {
        self.iter().map(Namespace::kind).collect()
    }

    /// The number of namespaces in the set.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The namespaces, in the order of [`NsKind::ALL`].
    pub fn iter(&self) -> SetIter<'_> {
        SetIter {
            inner: self.slots.iter(),
        }
    }

    /// Another set with new handles to the same namespaces.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if an fd cannot be duplicated.
    pub fn try_clone(&self) -> Result<NsSet> {
        self.iter().map(Namespace::try_clone).collect()
    }

    /// Switches the **calling thread** into every namespace of the set, and
    /// returns a guard that switches it back when dropped.
    ///
    /// The thread's current namespaces are opened before the first
    /// `setns(2)`, so that it can always be switched back; kinds the thread
    /// is already in are not switched. Each `setns` passes the kind's
    /// `CLONE_NEW*` flag, so the kernel refuses a namespace of another kind.
    /// If entering fails half way, the kinds already switched are switched
    /// back before the error is returned: the thread is where it was.
    ///
    /// Only net, uts, ipc, cgroup and pid can be switched this way (pid:
    /// only `pid_for_children` changes, and the thread cannot create
    /// threads while it is switched; processes it forks start in the pid
    /// namespace). A mnt, time or user namespace the thread is already in
    /// needs no switch and is accepted (a set read from a container often
    /// has the host's user and time namespaces); another one is refused:
    /// run the code on a worker or in a process instead.
    ///
    /// Never hold the guard across `.await`: see [`NsGuard`]'s docs.
    ///
    /// Everything else on this thread runs inside too while the guard lives;
    /// threads started meanwhile stay inside for good, and work handed to
    /// thread pools started earlier runs outside.
    ///
    /// # Errors
    ///
    /// - [`Error::UnsupportedOnThread`] if the set has a mnt, time or user
    ///   namespace the thread is not already in, before anything changes;
    /// - [`Error::PermissionDenied`] without `CAP_SYS_ADMIN` over the target;
    /// - [`Error::Enter`] if `setns` fails otherwise;
    /// - [`Error::Restore`] if switching back after a failure failed too: the
    ///   thread is then poisoned;
    /// - [`Error::Poisoned`] if the thread was poisoned before.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use nsguard::{Namespace, NsSet};
    ///
    /// let blue = NsSet::from(Namespace::named("blue")?);
    /// {
    ///     let _guard = blue.enter()?;
    ///     // this thread is in `blue`: sockets made here live there
    /// }
    /// // and back where it was
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    #[doc(alias = "setns")]
    pub fn enter(&self) -> Result<NsGuard> {
        crate::guard::enter(self)
    }
}

impl NsSet {
    /// Runs `f` on a worker thread of the [global executor](Executor::global)
    /// that is inside every namespace of the set, and returns its value.
    ///
    /// The calling thread is never switched: it blocks until `f` has
    /// returned, which is why `f` may borrow from it, as with
    /// [`std::thread::scope`]. Kinds the set does not name are those of the
    /// process's main thread. A call from inside another `run` for the
    /// namespaces its worker is already in runs inline.
    ///
    /// mnt works (the worker gets a private root and cwd, and then serves
    /// that mount namespace only); pid works (processes spawned in `f` land
    /// in the pid namespace; threads cannot be spawned there, and
    /// `std::thread::Builder::spawn` returns an error). time and user cannot
    /// be entered by any thread: spawn a process into the set instead.
    ///
    /// Threads `f` starts stay in the namespaces for good; work `f` hands to
    /// a thread pool started elsewhere runs outside them.
    ///
    /// # Errors
    ///
    /// - [`Error::UnsupportedOnThread`] if the set has a time or user
    ///   namespace other than the process's own (which needs no switch);
    /// - [`Error::PermissionDenied`] or [`Error::Enter`] if the worker cannot
    ///   enter a namespace (`f` does not run);
    /// - [`Error::Worker`] if no worker thread can be started;
    /// - [`Error::Poisoned`] if the calling thread is poisoned.
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic is caught on the worker and re-raised here
    /// with its original payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let sandbox = NsSet::unshare(NsKind::Net)?;
    /// let mut names = Vec::new();
    /// sandbox.run(|| {
    ///     // on a worker inside `sandbox`; `names` is borrowed from the caller
    ///     for iface in nix::net::if_::if_nameindex().unwrap().iter() {
    ///         names.push(iface.name().to_string_lossy().into_owned());
    ///     }
    /// })?;
    /// assert_eq!(names, ["lo"]); // a new network namespace has only `lo`
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        Executor::global()?.run(self, f)
    }

    /// The order in which one thread (a forked child, or a creating thread)
    /// enters the set's namespaces, `skip` left out: the namespaces not
    /// owned by the set's user namespace first, then the user namespace, then
    /// those it owns, which need the capabilities it grants. Without a user
    /// namespace, [`SETNS_ORDER`].
    pub(crate) fn entry_order(&self, skip: NsKinds) -> Vec<&Namespace> {
        let kinds = SETNS_ORDER.into_iter().filter(|k| !skip.contains(*k));
        let user = self
            .get(NsKind::User)
            .filter(|_| !skip.contains(NsKind::User));
        let Some(user) = user else {
            return kinds.filter_map(|k| self.get(k)).collect();
        };
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for ns in kinds
            .filter(|k| *k != NsKind::User)
            .filter_map(|k| self.get(k))
        {
            // A namespace whose owner the caller cannot even see is not
            // owned by `user`, which the caller holds.
            if ns.owner().is_ok_and(|owner| owner == *user) {
                after.push(ns);
            } else {
                before.push(ns);
            }
        }
        before.push(user);
        before.extend(after);
        before
    }

    /// New handles to the namespaces of the set that the calling thread is
    /// not in: only those need a switch (a child forked from the thread, or
    /// a thread it starts, is already in the others).
    pub(crate) fn to_enter(&self) -> Result<NsSet> {
        let mut out = NsSet::new();
        for ns in self {
            if Namespace::current_unchecked(ns.kind())?.id() != ns.id() {
                out.insert(ns.try_clone()?);
            }
        }
        Ok(out)
    }

    /// The set as the executor sees it: borrowed handles.
    pub(crate) fn target(&self) -> Target<'_> {
        self.iter().fold(Target::default(), Target::with)
    }
}

/// Two sets are equal when they hold the same namespaces (by id), whatever
/// paths or fds they were opened with.
impl PartialEq for NsSet {
    fn eq(&self, other: &NsSet) -> bool {
        self.iter().map(Namespace::id).eq(other.iter().map(Namespace::id))
    }
}

impl Eq for NsSet {}

impl fmt::Debug for NsSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl From<Namespace> for NsSet {
    fn from(ns: Namespace) -> NsSet {
        NsSet::new().with(ns)
    }
}

impl FromIterator<Namespace> for NsSet {
    /// Collects namespaces; a later one replaces an earlier one of its kind.
    fn from_iter<I: IntoIterator<Item = Namespace>>(iter: I) -> NsSet {
        let mut set = NsSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<Namespace> for NsSet {
    fn extend<I: IntoIterator<Item = Namespace>>(&mut self, iter: I) {
        for ns in iter {
            self.insert(ns);
        }
    }
}

impl<'a> IntoIterator for &'a NsSet {
    type Item = &'a Namespace;
    type IntoIter = SetIter<'a>;

    fn into_iter(self) -> SetIter<'a> {
        self.iter()
    }
}

impl IntoIterator for NsSet {
    type Item = Namespace;
    type IntoIter = SetIntoIter;

    fn into_iter(self) -> SetIntoIter {
        SetIntoIter {
            inner: self.slots.into_iter(),
        }
    }
}

/// Iterator over the `&Namespace`s of an [`NsSet`], in the order of
/// [`NsKind::ALL`]: see [`NsSet::iter`]. (Named like
/// [`KindsIter`](crate::KindsIter), the iterator of [`NsKinds`].)
#[derive(Clone, Debug)]
pub struct SetIter<'a> {
    inner: std::slice::Iter<'a, Option<Namespace>>,
}

impl<'a> Iterator for SetIter<'a> {
    type Item = &'a Namespace;

    fn next(&mut self) -> Option<&'a Namespace> {
        self.inner.by_ref().flatten().next()
    }
}

/// Iterator over the `Namespace`s of an [`NsSet`], by value, in the order
/// of [`NsKind::ALL`]: `for ns in set`.
#[derive(Debug)]
pub struct SetIntoIter {
    inner: std::array::IntoIter<Option<Namespace>, { NsKind::COUNT }>,
}

impl Iterator for SetIntoIter {
    type Item = Namespace;

    fn next(&mut self) -> Option<Namespace> {
        self.inner.by_ref().flatten().next()
    }
}
