//! [`NsId`]: the identity of a namespace.

use std::fmt;

use crate::kind::NsKind;

/// The identity of a namespace: the `(st_dev, st_ino)` of its nsfs inode,
/// with its kind.
///
/// Displays like the target of a `/proc/<pid>/ns/*` link:
/// `net:[4026531833]`.
///
/// Two handles name the same namespace exactly when their ids are equal.
/// The kernel reuses inode numbers once a namespace is gone, so an id is
/// only meaningful while something keeps the namespace alive, such as the
/// [`Namespace`](crate::Namespace) it came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId {
    kind: NsKind,
    dev: u64,
    ino: u64,
}

impl NsId {
    pub(crate) const fn new(kind: NsKind, dev: u64, ino: u64) -> NsId {
        NsId { kind, dev, ino }
    }

    /// The kind of the namespace.
    pub const fn kind(self) -> NsKind {
        self.kind
    }

    /// The device of the nsfs file system (`st_dev`).
    pub const fn dev(self) -> u64 {
        self.dev
    }

    /// The inode number (`st_ino`), the number shown by `ls -l /proc/self/ns`
    /// and `lsns`.
    pub const fn ino(self) -> u64 {
        self.ino
    }
}

impl fmt::Display for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:[{}]", self.kind, self.ino)
    }
}

impl fmt::Debug for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NsId({}:[{}], dev {:#x})", self.kind, self.ino, self.dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_proc_links() {
        let id = NsId::new(NsKind::Net, 4, 4026531833);
        assert_eq!(id.to_string(), "net:[4026531833]");
        assert_eq!(format!("{id:?}"), "NsId(net:[4026531833], dev 0x4)");
        assert_eq!(
            (id.kind(), id.dev(), id.ino()),
            (NsKind::Net, 4, 4026531833)
        );
    }

    #[test]
    fn equality_needs_device_and_inode() {
        let a = NsId::new(NsKind::Uts, 4, 10);
        assert_eq!(a, NsId::new(NsKind::Uts, 4, 10));
        assert_ne!(a, NsId::new(NsKind::Uts, 5, 10));
        assert_ne!(a, NsId::new(NsKind::Uts, 4, 11));
    }
}
