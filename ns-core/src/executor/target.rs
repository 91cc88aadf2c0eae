//! What a call asks for ([`Target`]) and where a worker is ([`Profile`]).

use crate::error::Result;
use crate::id::NsId;
use crate::kind::NsKind;
use crate::namespace::Namespace;
use crate::set::SETNS_ORDER;
use crate::thread_state;

/// The kinds a worker keeps track of, in setns order: every kind a thread
/// can change for itself that the running kernel has. A thread of a
/// multithreaded process can never change its user namespace, so that one
/// is left out; a kernel without time namespaces has no
/// `time_for_children` to read.
pub(crate) fn tracked() -> impl Iterator<Item = NsKind> {
    SETNS_ORDER
        .into_iter()
        .filter(|k| *k != NsKind::User && crate::probe::has(*k))
}

/// The namespaces a call should run in, borrowed: at most one per kind.
#[derive(Clone, Copy, Default)]
pub(crate) struct Target<'a> {
    slots: [Option<&'a Namespace>; NsKind::COUNT],
}

impl<'a> Target<'a> {
    pub(crate) fn with(mut self, ns: &'a Namespace) -> Target<'a> {
        self.slots[ns.kind().index()] = Some(ns);
        self
    }

    pub(crate) fn get(&self, kind: NsKind) -> Option<&'a Namespace> {
        self.slots[kind.index()]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Namespace> + '_ {
        self.slots.iter().flatten().copied()
    }
}

/// Where a thread is: the inode number of its namespace of every
/// [`tracked`] kind (0 for the user namespace, which is not tracked).
///
/// The inode number alone is exact: every namespace a profile names is
/// alive (a thread is in it, or a handle holds it), and no two live
/// namespaces share an inode of the one nsfs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Profile {
    inos: [u64; NsKind::COUNT],
}

impl Profile {
    /// Reads the calling thread's profile from `/proc/thread-self/ns`.
    pub(crate) fn of_current_thread() -> Result<Profile> {
        let mut inos = [0; NsKind::COUNT];
        thread_state::each_current_ino(tracked(), |kind, ino| {
            inos[kind.index()] = ino;
            true
        })?;
        Ok(Profile { inos })
    }

    /// Whether the calling thread is still exactly where this profile says,
    /// for every tracked kind. Reads the links' text (`readlinkat`), which
    /// unlike following them (`fstatat`) does not make the kernel build a
    /// file for the namespace, through fds of the links kept open per
    /// thread ([`thread_state::each_current_ino`]).
    pub(crate) fn matches_current_thread(&self) -> Result<bool> {
        thread_state::each_current_ino(tracked(), |kind, ino| ino == self.get(kind))
    }

    /// The inode number of the namespace of `kind`.
    pub(crate) fn get(&self, kind: NsKind) -> u64 {
        self.inos[kind.index()]
    }

    /// Records that the thread is in `id`.
    pub(crate) fn set(&mut self, id: NsId) {
        self.inos[id.kind().index()] = id.ino();
    }

    /// This profile with the target's namespaces in place of its own (a
    /// user namespace is not tracked: it can only be the workers' own).
    pub(crate) fn overlaid(mut self, target: &Target<'_>) -> Profile {
        for ns in target.iter().filter(|ns| ns.kind() != NsKind::User) {
            self.set(ns.id());
        }
        self
    }
}
