//! Namespace kinds ([`NsKind`]) and sets of kinds ([`NsKinds`]).

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not, Sub, SubAssign};
use std::str::FromStr;

/// `CLONE_NEWTIME`, missing from `libc` for glibc targets (Linux 5.6+).
pub(crate) const CLONE_NEWTIME: i32 = 0x0000_0080;

/// One of the eight kinds of Linux namespace.
///
/// Each kind has a name under `/proc/<pid>/ns/` ([`proc_name`](Self::proc_name))
/// and a `CLONE_NEW*` flag ([`clone_flag`](Self::clone_flag)). It parses from
/// and displays as its proc name:
///
/// ```
/// use nsguard::NsKind;
///
/// let kind: NsKind = "net".parse()?;
/// assert_eq!(kind, NsKind::Net);
/// assert_eq!(kind.to_string(), "net");
/// assert_eq!(kind.clone_flag(), libc::CLONE_NEWNET);
/// # Ok::<(), nsguard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NsKind {
    /// Cgroup namespace: the cgroup root seen in `/proc/self/cgroup`.
    Cgroup,
    /// IPC namespace: System V IPC objects and POSIX message queues.
    Ipc,
    /// Mount namespace: the mount table.
    Mnt,
    /// Network namespace: interfaces, routes, sockets, firewall.
    Net,
    /// PID namespace. On a thread only the namespace of its future children
    /// (`pid_for_children`) can change.
    Pid,
    /// Time namespace: offsets of the monotonic and boot-time clocks.
    Time,
    /// User namespace: uid/gid mappings and capabilities.
    User,
    /// UTS namespace: host name and NIS domain name.
    Uts,
}

impl NsKind {
    /// Every kind, in the order of their proc names.
    pub const ALL: [NsKind; 8] = [
        NsKind::Cgroup,
        NsKind::Ipc,
        NsKind::Mnt,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Time,
        NsKind::User,
        NsKind::Uts,
    ];

    /// The number of kinds.
    pub const COUNT: usize = Self::ALL.len();

    /// The file name of this kind under `/proc/<pid>/ns/`: `"net"`, `"mnt"`…
    pub const fn proc_name(self) -> &'static str {
        match self {
            NsKind::Cgroup => "cgroup",
            NsKind::Ipc => "ipc",
            NsKind::Mnt => "mnt",
            NsKind::Net => "net",
            NsKind::Pid => "pid",
            NsKind::Time => "time",
            NsKind::User => "user",
            NsKind::Uts => "uts",
        }
    }

    /// The file under `/proc/thread-self/ns/` that shows what `setns(2)` of
    /// this kind changes on a thread.
    ///
    /// That is the proc name, except for [`Pid`](Self::Pid) and
    /// [`Time`](Self::Time): `setns` never moves the calling thread itself
    /// into another pid or time namespace, only its future children, so the
    /// file is `pid_for_children` or `time_for_children`.
    pub const fn thread_proc_name(self) -> &'static str {
        match self {
            NsKind::Pid => "pid_for_children",
            NsKind::Time => "time_for_children",
            other => other.proc_name(),
        }
    }

    /// The `CLONE_NEW*` flag of this kind, as passed to `setns(2)`,
    /// `unshare(2)` and `clone(2)`.
    pub const fn clone_flag(self) -> i32 {
        match self {
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Mnt => libc::CLONE_NEWNS,
            NsKind::Net => libc::CLONE_NEWNET,
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Time => CLONE_NEWTIME,
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Uts => libc::CLONE_NEWUTS,
        }
    }

    /// The kind whose `CLONE_NEW*` flag is `flag`, as returned by the
    /// `NS_GET_NSTYPE` ioctl; `None` for anything else.
    pub fn from_clone_flag(flag: i32) -> Option<NsKind> {
        Self::ALL.into_iter().find(|k| k.clone_flag() == flag)
    }

    /// Whether a thread of a multithreaded process can enter a namespace of
    /// this kind and leave it again with `setns(2)`, as [`NsSet::enter`]
    /// needs. True for net, uts, ipc, cgroup and pid.
    ///
    /// [`NsSet::enter`]: crate::NsSet::enter
    pub const fn is_thread_switchable(self) -> bool {
        self.thread_refusal().is_none()
    }

    /// Why a thread cannot switch to and back from a namespace of this kind,
    /// and what to use instead; `None` when it can.
    pub(crate) const fn thread_refusal(self) -> Option<(&'static str, &'static str)> {
        match self {
            NsKind::Mnt => Some((
                "a thread shares its root and working directory with the other threads of the \
                 process, so setns(CLONE_NEWNS) fails with EINVAL until the thread calls \
                 unshare(CLONE_FS), which cannot be undone: the thread would keep a private \
                 root and cwd after switching back",
                "run the code on a dedicated worker thread with NsSet::run or #[in_namespace], \
                 or spawn a process into the set with CommandExt::spawn_in",
            )),
            NsKind::Time => Some((
                "the kernel refuses setns(CLONE_NEWTIME) with EUSERS in a process that has \
                 more than one thread; only a new process can live in another time namespace",
                "spawn a process into the set with CommandExt::spawn_in",
            )),
            NsKind::User => Some((
                "the kernel refuses setns(CLONE_NEWUSER) with EINVAL in a process that has \
                 more than one thread, and a thread could never switch back",
                "spawn a process into the set with CommandExt::spawn_in (a process can be \
                 started in a user namespace)",
            )),
            _ => None,
        }
    }

    /// The capabilities `setns(2)` needs for this kind.
    pub(crate) const fn setns_capability(self) -> &'static str {
        match self {
            NsKind::Mnt => {
                "CAP_SYS_ADMIN (in the user namespace owning the target and in the caller's) \
                 and CAP_SYS_CHROOT (in the caller's user namespace)"
            }
            NsKind::User => "CAP_SYS_ADMIN in the target user namespace",
            _ => "CAP_SYS_ADMIN in the user namespace owning the target and in the caller's",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            NsKind::Cgroup => 0,
            NsKind::Ipc => 1,
            NsKind::Mnt => 2,
            NsKind::Net => 3,
            NsKind::Pid => 4,
            NsKind::Time => 5,
            NsKind::User => 6,
            NsKind::Uts => 7,
        }
    }

    const fn bit(self) -> u8 {
        1 << self.index()
    }
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

impl fmt::Display for NsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.proc_name())
    }
}

impl FromStr for NsKind {
    type Err = ParseKindError;

    /// Parses a proc name (`"net"`, `"mnt"`…). `"pid_for_children"` and
    /// `"time_for_children"` are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.proc_name() == s || k.thread_proc_name() == s)
            .ok_or_else(|| ParseKindError { name: s.to_owned() })
    }
}

/// The error of parsing an [`NsKind`] from a string that is not the proc
/// name of a kind (as [`std::num::ParseIntError`] is for integers).
///
/// Converts into [`Error::UnknownKind`](crate::Error::UnknownKind), so `?`
/// works in functions that return nsguard's [`Result`](crate::Result).
///
/// ```
/// use nsguard::{NsKind, ParseKindError};
///
/// let err: ParseKindError = "network".parse::<NsKind>().unwrap_err();
/// assert_eq!(err.name(), "network");
/// assert!(err.to_string().contains("expected one of cgroup, ipc, mnt"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseKindError {
    name: String,
}

impl ParseKindError {
    /// The string that did not parse.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The string, taken out of the error.
    pub fn into_name(self) -> String {
        self.name
    }
}

impl fmt::Display for ParseKindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown namespace kind {:?}: expected one of cgroup, ipc, mnt, net, pid, time, \
             user, uts",
            self.name
        )
    }
}

impl std::error::Error for ParseKindError {}

/// A set of [`NsKind`]s, as a small copyable bit set.
///
/// Functions that take kinds accept `impl Into<NsKinds>`, so any of these
/// work: `NsKind::Net`, `NsKind::Net | NsKind::Uts`, `[NsKind::Net,
/// NsKind::Ipc]`, `NsKinds::ALL`.
///
/// ```
/// use nsguard::{NsKind, NsKinds};
///
/// let kinds = NsKind::Net | NsKind::Uts;
/// assert!(kinds.contains(NsKind::Net));
/// assert_eq!(kinds.len(), 2);
/// assert_eq!(kinds.to_string(), "net|uts");
/// assert_eq!(kinds, NsKinds::from([NsKind::Uts, NsKind::Net]));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NsKinds(u8);

impl NsKinds {
    /// No kind.
    pub const EMPTY: NsKinds = NsKinds(0);
    /// All eight kinds, whether or not the running kernel has them: for
    /// every kind it has, use [`supported`](Self::supported).
    pub const ALL: NsKinds = NsKinds(0xff);
    /// The kinds a thread can switch to and back: cgroup, ipc, net, pid, uts.
    /// See [`NsKind::is_thread_switchable`].
    pub const THREAD_SWITCHABLE: NsKinds = NsKinds(
        NsKind::Cgroup.bit()
            | NsKind::Ipc.bit()
            | NsKind::Net.bit()
            | NsKind::Pid.bit()
            | NsKind::Uts.bit(),
    );

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: NsKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind`; returns whether it was not there before.
    pub fn insert(&mut self, kind: NsKind) -> bool {
        let added = !self.contains(kind);
        self.0 |= kind.bit();
        added
    }

    /// Removes `kind`; returns whether it was there.
    pub fn remove(&mut self, kind: NsKind) -> bool {
        let had = self.contains(kind);
        self.0 &= !kind.bit();
        had
    }

    /// The number of kinds in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set of just `kind` (`From<NsKind>`, usable in constants).
    pub const fn of(kind: NsKind) -> NsKinds {
        NsKinds(kind.bit())
    }

    /// The kinds in either set (`|`, usable in constants).
    #[must_use]
    pub const fn union(self, other: NsKinds) -> NsKinds {
        NsKinds(self.0 | other.0)
    }

    /// The kinds in both sets.
    #[must_use]
    pub const fn intersection(self, other: NsKinds) -> NsKinds {
        NsKinds(self.0 & other.0)
    }

    /// The kinds of `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: NsKinds) -> NsKinds {
        NsKinds(self.0 & !other.0)
    }

    /// The kinds, in the order of [`NsKind::ALL`].
    pub fn iter(self) -> KindsIter {
        KindsIter { rest: self }
    }
}

impl fmt::Debug for NsKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for NsKinds {
    /// The proc names joined by `|`, like `net|uts`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, kind) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(kind.proc_name())?;
        }
        Ok(())
    }
}

impl From<NsKind> for NsKinds {
    fn from(kind: NsKind) -> Self {
        NsKinds(kind.bit())
    }
}

impl<const N: usize> From<[NsKind; N]> for NsKinds {
    fn from(kinds: [NsKind; N]) -> Self {
        kinds.into_iter().collect()
    }
}

impl From<&[NsKind]> for NsKinds {
    fn from(kinds: &[NsKind]) -> Self {
        kinds.iter().copied().collect()
    }
}

impl FromIterator<NsKind> for NsKinds {
    fn from_iter<I: IntoIterator<Item = NsKind>>(iter: I) -> Self {
        let mut set = NsKinds::EMPTY;
        set.extend(iter);
        set
    }
}

impl Extend<NsKind> for NsKinds {
    fn extend<I: IntoIterator<Item = NsKind>>(&mut self, iter: I) {
        for kind in iter {
            self.insert(kind);
        }
    }
}

impl IntoIterator for NsKinds {
    type Item = NsKind;
    type IntoIter = KindsIter;

    fn into_iter(self) -> KindsIter {
        KindsIter { rest: self }
    }
}

/// Iterator over the kinds of an [`NsKinds`], in the order of [`NsKind::ALL`].
#[derive(Clone, Debug)]
pub struct KindsIter {
    rest: NsKinds,
}

impl Iterator for KindsIter {
    type Item = NsKind;

    fn next(&mut self) -> Option<NsKind> {
        let kind = NsKind::ALL.into_iter().find(|k| self.rest.contains(*k))?;
        self.rest.remove(kind);
        Some(kind)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rest.len(), Some(self.rest.len()))
    }
}

impl ExactSizeIterator for KindsIter {}

impl BitOr for NsKind {
    type Output = NsKinds;

    fn bitor(self, rhs: NsKind) -> NsKinds {
        NsKinds(self.bit() | rhs.bit())
    }
}

impl BitOr<NsKind> for NsKinds {
    type Output = NsKinds;

    fn bitor(self, rhs: NsKind) -> NsKinds {
        NsKinds(self.0 | rhs.bit())
    }
}

impl BitOr for NsKinds {
    type Output = NsKinds;

    fn bitor(self, rhs: NsKinds) -> NsKinds {
        NsKinds(self.0 | rhs.0)
    }
}

impl BitOrAssign<NsKind> for NsKinds {
    fn bitor_assign(&mut self, rhs: NsKind) {
        self.insert(rhs);
    }
}

impl BitOrAssign for NsKinds {
    fn bitor_assign(&mut self, rhs: NsKinds) {
        self.0 |= rhs.0;
    }
}

/// `a & b`: the kinds in both.
impl<R: Into<NsKinds>> BitAnd<R> for NsKinds {
    type Output = NsKinds;

    fn bitand(self, rhs: R) -> NsKinds {
        self.intersection(rhs.into())
    }
}

impl<R: Into<NsKinds>> BitAndAssign<R> for NsKinds {
    fn bitand_assign(&mut self, rhs: R) {
        *self = *self & rhs;
    }
}

/// `a - b`: the kinds of `a` not in `b`, as in `NsKinds::ALL - NsKind::User`.
impl<R: Into<NsKinds>> Sub<R> for NsKinds {
    type Output = NsKinds;

    fn sub(self, rhs: R) -> NsKinds {
        self.difference(rhs.into())
    }
}

impl<R: Into<NsKinds>> SubAssign<R> for NsKinds {
    fn sub_assign(&mut self, rhs: R) {
        *self = *self - rhs;
    }
}

/// `!a`: every kind not in `a`.
impl Not for NsKinds {
    type Output = NsKinds;

    fn not(self) -> NsKinds {
        NsKinds::ALL.difference(self)
    }
}

/// `!kind`: every other kind.
impl Not for NsKind {
    type Output = NsKinds;

    fn not(self) -> NsKinds {
        !NsKinds::from(self)
    }
}

#[cfg(test)]
mod operator_tests {
    use super::*;

    #[test]
    fn set_operators_and_their_assign_forms() {
        let net_uts = NsKind::Net | NsKind::Uts;
        assert_eq!(net_uts & NsKind::Net, NsKinds::from(NsKind::Net));
        assert_eq!(net_uts - NsKind::Net, NsKinds::from(NsKind::Uts));
        assert_eq!((NsKinds::ALL - NsKind::User).len(), 7);
        assert_eq!(!NsKinds::ALL, NsKinds::EMPTY);
        assert_eq!(!NsKind::Time, NsKinds::ALL - NsKind::Time);
        let mut k = NsKinds::ALL;
        k -= NsKind::User;
        k &= NsKind::User | NsKind::Net;
        assert_eq!(k, NsKinds::from(NsKind::Net));
        let it: KindsIter = net_uts.iter();
        assert_eq!(it.collect::<Vec<_>>(), [NsKind::Net, NsKind::Uts]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_names_round_trip() {
        for kind in NsKind::ALL {
            assert_eq!(kind.proc_name().parse::<NsKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.proc_name());
            assert_eq!(kind.thread_proc_name().parse::<NsKind>().unwrap(), kind);
        }
        assert_eq!(NsKind::Pid.thread_proc_name(), "pid_for_children");
        assert_eq!(NsKind::Time.thread_proc_name(), "time_for_children");
    }

    #[test]
    fn unknown_name_is_an_error_that_lists_the_valid_ones() {
        for bad in ["", "network", "NET", "mount", "net ", "pid_for_child"] {
            let err = bad.parse::<NsKind>().unwrap_err();
            assert_eq!(err.name(), bad);
            let msg = err.to_string();
            assert!(
                msg.contains("cgroup, ipc, mnt, net, pid, time, user, uts"),
                "{msg}"
            );
        }
    }

    #[test]
    fn clone_flags_are_the_kernel_values_and_distinct() {
        let expected = [
            (NsKind::Cgroup, 0x0200_0000),
            (NsKind::Ipc, 0x0800_0000),
            (NsKind::Mnt, 0x0002_0000),
            (NsKind::Net, 0x4000_0000),
            (NsKind::Pid, 0x2000_0000),
            (NsKind::Time, 0x0000_0080),
            (NsKind::User, 0x1000_0000),
            (NsKind::Uts, 0x0400_0000),
        ];
        for (kind, flag) in expected {
            assert_eq!(kind.clone_flag(), flag, "{kind}");
            assert_eq!(NsKind::from_clone_flag(flag), Some(kind));
        }
        assert_eq!(NsKind::from_clone_flag(0), None);
        assert_eq!(NsKind::from_clone_flag(libc::CLONE_FS), None);
    }

    #[test]
    fn index_matches_position_in_all() {
        for (i, kind) in NsKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn thread_switchable_kinds() {
        let switchable: Vec<_> = NsKind::ALL
            .into_iter()
            .filter(|k| k.is_thread_switchable())
            .collect();
        assert_eq!(
            switchable,
            [
                NsKind::Cgroup,
                NsKind::Ipc,
                NsKind::Net,
                NsKind::Pid,
                NsKind::Uts
            ]
        );
        assert_eq!(NsKinds::THREAD_SWITCHABLE, switchable.into_iter().collect());
    }

    #[test]
    fn kind_sets() {
        let mut set = NsKind::Uts | NsKind::Net;
        assert_eq!(set.len(), 2);
        assert_eq!(set.iter().collect::<Vec<_>>(), [NsKind::Net, NsKind::Uts]);
        assert_eq!(set.into_iter().len(), 2);
        assert!(set.insert(NsKind::Ipc));
        assert!(!set.insert(NsKind::Ipc));
        assert!(set.remove(NsKind::Net));
        assert!(!set.remove(NsKind::Net));
        assert_eq!(set.to_string(), "ipc|uts");
        assert_eq!(format!("{set:?}"), "{Ipc, Uts}");
        assert_eq!(NsKinds::EMPTY.to_string(), "none");
        assert_eq!(NsKinds::ALL.len(), 8);
        assert_eq!(
            NsKinds::ALL.difference(NsKinds::THREAD_SWITCHABLE),
            NsKind::Mnt | NsKind::Time | NsKind::User
        );
        assert_eq!(
            NsKinds::from(&[NsKind::Pid, NsKind::Pid][..]),
            NsKinds::from(NsKind::Pid)
        );
        let mut acc = NsKinds::EMPTY;
        acc |= NsKind::Cgroup;
        acc |= NsKind::Time | NsKind::User;
        assert_eq!(
            acc.intersection(NsKind::User | NsKind::Net),
            NsKinds::from(NsKind::User)
        );
    }
}
