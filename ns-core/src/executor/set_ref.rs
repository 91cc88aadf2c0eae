//! [`SetRef`]: the namespaces a call should run in, borrowed.

use crate::handle::namespace::Namespace;
use crate::handle::set::NsSet;
use crate::id::NsId;
use crate::kind::NsKind;

/// The namespaces a call should run in, borrowed: at most one per kind.
/// What a blocking call lends its worker, and what `#[in_namespace]`'s
/// expansion builds from its arguments (through `__private`, whence the
/// `pub` methods).
#[derive(Clone, Copy, Debug, Default)]
pub struct SetRef<'a> {
    slots: [Option<&'a Namespace>; NsKind::COUNT],
}

impl<'a> SetRef<'a> {
    /// No namespace yet.
    #[inline]
    pub fn new() -> SetRef<'a> {
        SetRef::default()
    }

    /// Every namespace of `set`.
    #[inline]
    pub fn from_set(set: &'a NsSet) -> SetRef<'a> {
        set.iter().fold(SetRef::new(), SetRef::with)
    }

    /// Adds (or replaces) the namespace of `ns`'s kind.
    #[must_use]
    #[inline]
    pub fn with(mut self, ns: &'a Namespace) -> SetRef<'a> {
        self.slots[ns.kind().index()] = Some(ns);
        self
    }

    pub(crate) fn get(&self, kind: NsKind) -> Option<&'a Namespace> {
        self.slots[kind.index()]
    }

    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Namespace> + '_ {
        self.slots.iter().flatten().copied()
    }

    /// The ids of the namespaces.
    #[inline]
    pub(crate) fn ids(&self) -> impl Iterator<Item = NsId> + '_ {
        self.iter().map(Namespace::id)
    }
}
