//! Per-thread state: the thread's marks (poisoned, live guards), where it
//! is ([`ns_links`], [`location`]), the other facts a body could change on
//! it ([`facts`]), which threads nsguard uses ([`owners`]), where every
//! thread of the process is ([`census`]), and a worker's time slice
//! ([`slice`]).

pub(crate) mod census;
pub(crate) mod facts;
pub(crate) mod location;
pub(crate) mod marks;
pub(crate) mod ns_links;
pub(crate) mod owners;
pub(crate) mod slice;

pub use marks::{is_poisoned, poison_reason};
