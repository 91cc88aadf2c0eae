//! What a call asks for ([`Target`]) and where a worker is ([`Profile`]).

use std::os::fd::{AsFd, BorrowedFd};

use crate::error::{Error, Result};
use crate::id::NsId;
use crate::kind::NsKind;
use crate::namespace::Namespace;
use crate::set::SETNS_ORDER;
use crate::{sys, thread_state};

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
        let dir = thread_state::ns_dir(NsKind::Net)?;
        let mut inos = [0; NsKind::COUNT];
        for kind in tracked() {
            inos[kind.index()] = read_ino(dir.as_fd(), kind)?;
        }
        Ok(Profile { inos })
    }

    /// Whether the calling thread is still exactly where this profile says,
    /// for every tracked kind. Reads the links' text (`readlinkat`), which
    /// unlike following them (`fstatat`) does not make the kernel build a
    /// file for the namespace: 1.7 us a kind instead of up to 4.2 us.
    pub(crate) fn matches_current_thread(&self) -> Result<bool> {
        let dir = thread_state::ns_dir(NsKind::Net)?;
        for kind in tracked() {
            if read_ino(dir.as_fd(), kind)? != self.get(kind) {
                return Ok(false);
            }
        }
        Ok(true)
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

/// The inode number of the calling thread's namespace of `kind`, from the
/// text of its link in the thread's `/proc/thread-self/ns` directory.
fn read_ino(dir: BorrowedFd<'_>, kind: NsKind) -> Result<u64> {
    let name = kind.thread_proc_name();
    sys::link_ino_at(dir, name).map_err(|errno| Error::Io {
        op: "reading",
        kind,
        path: Some(std::path::Path::new(thread_state::THREAD_NS_DIR).join(name)),
        errno,
    })
}
