//! [`NsSet`]: at most one namespace per kind.

use std::fmt;
use std::os::fd::AsFd;
use std::path::Path;

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::handle::namespace::{open_error, validate, Namespace};
use crate::handle::proc_dir::ProcDir;
use crate::kind::{NsKind, NsKinds, SETNS_ORDER};
use crate::sys;
use crate::sys::probe::check_supported;
use crate::thread::marks;

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
        marks::check()?;
        let kinds = kinds.into();
        check_supported(kinds)?;
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
        marks::check()?;
        let kinds = kinds.into();
        check_supported(kinds)?;
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
    /// `kinds`, before anything is opened; [`Error::NotANamespaceDir`] if
    /// `dir` does not exist or is not a directory; [`Error::NotFound`] if
    /// the file of a kind is missing, and the errors of
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
        marks::check()?;
        let dir = dir.as_ref();
        let kinds = kinds.into();
        check_supported(kinds)?;
        let Some(first) = kinds.iter().next() else {
            return Ok(NsSet::new());
        };
        let dir_fd = sys::open_dir(dir).map_err(|errno| match errno {
            Errno::ENOENT => Error::NotANamespaceDir {
                path: dir.to_path_buf(),
                found: "it does not exist",
                errno,
            },
            Errno::ENOTDIR => Error::NotANamespaceDir {
                path: dir.to_path_buf(),
                found: match std::fs::metadata(dir) {
                    Ok(meta) => sys::describe_mode(std::os::unix::fs::MetadataExt::mode(&meta)),
                    Err(_) => "a path through a file that is not a directory",
                },
                errno,
            },
            errno => open_error(first, dir, errno),
        })?;
        kinds
            .into_iter()
            .map(|kind| {
                let path = dir.join(kind.proc_name());
                let fd = sys::open_at(dir_fd.as_fd(), kind.proc_name())
                    .map_err(|errno| open_error(kind, &path, errno))?;
                validate(kind, fd, Some(&path))
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

    /// The namespace of `kind`, or an error naming the kinds the set has:
    /// `set.namespace(NsKind::Net)?` where `get` would need an `unwrap`.
    ///
    /// # Errors
    ///
    /// [`Error::NotInSet`] if the set has no namespace of `kind`.
    pub fn namespace(&self, kind: NsKind) -> Result<&Namespace> {
        self.get(kind).ok_or(Error::NotInSet {
            wanted: Some(kind),
            has: self.kinds(),
        })
    }

    /// The one namespace of a set of one kind, such as the set
    /// [`NsSet::unshare(NsKind::Net)`](NsSet::unshare) returns.
    ///
    /// ```
    /// use nsguard::{netns, NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let set = NsSet::unshare(NsKind::Net)?;
    /// let ns = set.only()?;
    /// assert_eq!(ns.kind(), NsKind::Net);
    /// assert!(NsSet::new().only().is_err());
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotInSet`] if the set is empty or has several kinds.
    pub fn only(&self) -> Result<&Namespace> {
        let mut all = self.iter();
        match (all.next(), all.next()) {
            (Some(ns), None) => Ok(ns),
            _ => Err(Error::NotInSet {
                wanted: None,
                has: self.kinds(),
            }),
        }
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
    #[inline]
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
}

impl NsSet {
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

    /// Moves the calling thread into the set's namespaces, in setns order:
    /// one `setns` per kind it is not already in.
    pub(crate) fn move_current_thread_in(&self) -> Result<()> {
        for kind in SETNS_ORDER {
            if let Some(ns) = self.get(kind) {
                if Namespace::current_unchecked(kind)?.id() != ns.id() {
                    sys::setns(ns, kind)
                        .map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
                }
            }
        }
        Ok(())
    }
}

/// Two sets are equal when they hold the same namespaces (by id), whatever
/// paths or fds they were opened with.
impl PartialEq for NsSet {
    fn eq(&self, other: &NsSet) -> bool {
        self.iter()
            .map(Namespace::id)
            .eq(other.iter().map(Namespace::id))
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

    #[inline]
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
