//! Handles to namespaces: [`Namespace`] (one open namespace, checked to be
//! of its kind), [`NsSet`] (at most one per kind), reading them from a
//! process's `/proc/<pid>` ([`proc_dir`]), the count of the program's
//! handles per namespace ([`registry`]), and whether a thread that leaves a
//! namespace can come back to it ([`reentry`]).

pub(crate) mod namespace;
pub(crate) mod proc_dir;
pub(crate) mod reentry;
pub(crate) mod registry;
pub(crate) mod set;

pub use namespace::{Namespace, NETNS_DIRS};
pub use set::{NsSet, SetIntoIter, SetIter};
