//! Per-thread state: the thread's marks (poisoned, live guards), where it
//! is ([`ns_links`], [`location`]), and the other facts a body could change
//! on it ([`facts`]).

pub(crate) mod facts;
pub(crate) mod location;
pub(crate) mod marks;
pub(crate) mod ns_links;

pub use marks::{is_poisoned, poison_reason};
