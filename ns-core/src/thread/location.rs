//! [`Location`]: where a thread is, the inode of its namespace of every
//! kind a thread can change.

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::id::NsId;
use crate::kind::{NsKind, NsKinds, SETNS_ORDER};
use crate::sys::ino_in_link;
use crate::sys::probe;
use crate::thread::ns_links;

/// The kinds a worker keeps track of, in setns order: every kind a thread
/// can change for itself that the running kernel has. A thread of a
/// multithreaded process can never change its user namespace, so that one
/// is left out; a kernel without time namespaces has no
/// `time_for_children` to read.
pub(crate) fn tracked() -> impl Iterator<Item = NsKind> {
    SETNS_ORDER
        .into_iter()
        .filter(|k| *k != NsKind::User && probe::has(*k))
}

/// [`tracked`], as a set.
fn tracked_kinds() -> NsKinds {
    tracked().collect()
}

/// Where a thread is: the inode number of its namespace of every
/// [`tracked`] kind (0 for the user namespace, which is not tracked).
///
/// The inode number alone is exact: every namespace a location names is
/// alive (a thread is in it, or a handle holds it), and no two live
/// namespaces share an inode of the one nsfs.
#[derive(Clone, Copy, Eq, Debug)]
pub(crate) struct Location {
    inos: [u64; NsKind::COUNT],
}

/// Compared with no early exit, so that the compiler does not make the
/// comparison a call to `memcmp`, which lies on a page of libc's own: a
/// call after an idle gap compares locations on both threads (README,
/// "Code pages").
impl PartialEq for Location {
    #[inline]
    fn eq(&self, other: &Location) -> bool {
        let differ = self
            .inos
            .iter()
            .zip(&other.inos)
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        differ == 0
    }
}

impl Location {
    /// Reads the calling thread's location from `/proc/thread-self/ns`.
    pub(crate) fn of_current_thread() -> Result<Location> {
        let mut inos = [0; NsKind::COUNT];
        ns_links::each_current_ino(tracked_kinds(), |kind, ino| {
            inos[kind.index()] = ino;
            true
        })?;
        Ok(Location { inos })
    }

    /// Where the thread whose `ns` directory is `dir` is (another thread of
    /// the process: `/proc/self/task/<tid>/ns`), read link by link.
    pub(crate) fn of_task(dir: &std::path::Path) -> Result<Location> {
        let mut inos = [0; NsKind::COUNT];
        for kind in tracked() {
            let path = dir.join(kind.thread_proc_name());
            let text = std::fs::read_link(&path).map_err(|e| Error::Io {
                op: "reading",
                kind: Some(kind),
                path: Some(path.clone()),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
            inos[kind.index()] =
                ino_in_link(text.as_os_str().as_encoded_bytes()).ok_or(Error::Io {
                    op: "parsing",
                    kind: Some(kind),
                    path: Some(path),
                    errno: Errno::EINVAL,
                })?;
        }
        Ok(Location { inos })
    }

    /// The kinds in which this location and `other` differ.
    pub(crate) fn differing(&self, other: &Location) -> NsKinds {
        tracked()
            .filter(|k| self.get(*k) != other.get(*k))
            .collect()
    }

    /// Whether the calling thread is still exactly here, for every tracked
    /// kind. Reads the links' text (`readlinkat`), which unlike following
    /// them (`fstatat`) does not make the kernel build a file for the
    /// namespace, through fds of the links kept open per thread
    /// ([`ns_links::each_current_ino`]).
    pub(crate) fn matches_current_thread(&self) -> Result<bool> {
        ns_links::each_current_ino(tracked_kinds(), |kind, ino| ino == self.get(kind))
    }

    /// The inode number of the namespace of `kind`.
    pub(crate) fn get(&self, kind: NsKind) -> u64 {
        self.inos[kind.index()]
    }

    /// Records that the thread is in `id`.
    pub(crate) fn set(&mut self, id: NsId) {
        self.inos[id.kind().index()] = id.ino();
    }

    /// This location with the namespaces `ids` in place of its own (a user
    /// namespace is not tracked: it can only be the workers' own).
    pub(crate) fn overlaid(mut self, ids: impl IntoIterator<Item = NsId>) -> Location {
        // A plain loop: every call runs this, and a filter's search would
        // be a function of its own, on a page of its own.
        for id in ids {
            if id.kind() != NsKind::User {
                self.set(id);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Location;
    use crate::kind::NsKind;

    /// `eq` is written by hand (no early exit, so no `memcmp`): two
    /// locations are equal exactly when every kind's inode is, whichever
    /// kind differs and in whichever bit.
    #[test]
    fn locations_are_equal_only_when_every_kind_is() {
        let base = Location {
            inos: [4_026_531_833; NsKind::COUNT],
        };
        assert_eq!(base, base);
        for kind in NsKind::ALL {
            for bit in [0, 1, 31, 32, 63] {
                let mut other = base;
                other.inos[kind.index()] ^= 1 << bit;
                assert_ne!(base, other, "{kind} differs in bit {bit}");
                assert_ne!(other, base, "{kind} differs in bit {bit}");
            }
        }
    }
}
