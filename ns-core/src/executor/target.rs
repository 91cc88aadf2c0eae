//! What a call asks for ([`Target`]) and where a worker is ([`Profile`]).

use std::os::fd::{AsFd, BorrowedFd};

use crate::error::{Error, Result};
use crate::id::NsId;
use crate::kind::NsKind;
use crate::namespace::Namespace;
use crate::{sys, thread_state};

/// The kinds a worker keeps track of: every kind a thread can change for
/// itself. A thread of a multithreaded process can never change its user
/// namespace, so that one is left out.
pub(crate) const TRACKED: [NsKind; 7] = [
    NsKind::Cgroup,
    NsKind::Ipc,
    NsKind::Uts,
    NsKind::Net,
    NsKind::Pid,
    NsKind::Mnt,
    NsKind::Time,
];

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

    /// Refuses kinds no worker thread can enter.
    pub(crate) fn check_runnable(&self) -> Result<()> {
        for ns in self.iter() {
            let kind = ns.kind();
            if matches!(kind, NsKind::User | NsKind::Time) {
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
}

/// The namespace ids of a thread, for every [`TRACKED`] kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Profile {
    ids: [Option<NsId>; NsKind::COUNT],
}

impl Profile {
    /// Reads the calling thread's profile from `/proc/thread-self/ns`,
    /// without opening anything: one `fstatat` per kind.
    pub(crate) fn of_current_thread() -> Result<Profile> {
        let dir = thread_state::ns_dir(NsKind::Net)?;
        let mut ids = [None; NsKind::COUNT];
        for kind in TRACKED {
            ids[kind.index()] = Some(stat_id(dir.as_fd(), kind)?);
        }
        Ok(Profile { ids })
    }

    /// Whether the calling thread is still exactly where this profile says,
    /// for every tracked kind. Reads the links' text (`readlinkat`), which
    /// unlike following them (`fstatat`) does not make the kernel build a
    /// file for the namespace: 1.7 us a kind instead of up to 4.2 us. The
    /// inode number alone is exact here: the thread is in each namespace it
    /// checks, so they are alive, and no two live namespaces share one.
    pub(crate) fn matches_current_thread(&self) -> Result<bool> {
        let dir = thread_state::ns_dir(NsKind::Net)?;
        for kind in TRACKED {
            let name = kind.thread_proc_name();
            let ino = sys::link_ino_at(dir.as_fd(), name).map_err(|errno| Error::Io {
                op: "reading",
                kind,
                path: Some(std::path::Path::new(thread_state::THREAD_NS_DIR).join(name)),
                errno,
            })?;
            if self.get(kind).map(NsId::ino) != Some(ino) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(crate) fn get(&self, kind: NsKind) -> Option<NsId> {
        self.ids[kind.index()]
    }

    pub(crate) fn set(&mut self, id: NsId) {
        self.ids[id.kind().index()] = Some(id);
    }

    /// This profile with the target's namespaces in place of its own.
    pub(crate) fn overlaid(mut self, target: &Target<'_>) -> Profile {
        for ns in target.iter() {
            self.set(ns.id());
        }
        self
    }
}

/// The id of the calling thread's namespace of `kind`, by `fstatat` on its
/// `/proc/thread-self/ns` directory.
pub(crate) fn stat_id(dir: BorrowedFd<'_>, kind: NsKind) -> Result<NsId> {
    let name = kind.thread_proc_name();
    let (dev, ino) = sys::stat_at(dir, name).map_err(|errno| Error::Io {
        op: "inspecting",
        kind,
        path: Some(std::path::Path::new(thread_state::THREAD_NS_DIR).join(name)),
        errno,
    })?;
    Ok(NsId::new(kind, dev, ino))
}
