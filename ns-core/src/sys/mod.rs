//! The kernel boundary: every system call nsguard makes, as small safe
//! functions over borrowed and owned fds; what the running kernel offers
//! ([`probe`]); and the fork generation, with the values published once per
//! process ([`fork_local`]), which every process-wide cache and lock of
//! nsguard is kept in, so that a forked child never waits for a lock that
//! a thread of its parent held.
//!
//! Most of nsguard's `unsafe` code lives here, and the compiler allows it
//! nowhere else but in the handoff of a borrowing call
//! (`executor/handoff.rs`). Each `unsafe` block says why it is
//! sound in a `// SAFETY:` comment. Nothing here knows of handles, threads'
//! bookkeeping or the executor: callers pass fds and get [`Errno`]s.
//!
//! [`Errno`]: crate::Errno

mod close_fds;
mod dirents;
mod fd;
mod fork;
pub(crate) mod fork_local;
mod ns_link;
mod nsfs;
mod pre_exec;
pub(crate) mod probe;
mod thread;

pub(crate) use dirents::{getdents, link_count, open_listing, seek_entries, NUMBER_RECORD};
pub(crate) use fd::{
    describe_mode, dir_id_at, is_nsfs, open, open_at, open_dir, pread_into, socket, stat, DirId,
};
pub(crate) use fork::{ChildCreds, ChildFailure, ChildPlan, ChildStep, ForkedHelper};
pub(crate) use ns_link::{link_ino, open_link_at, parse_link_ino as ino_in_link};
pub(crate) use nsfs::{
    make_mounts_private, ns_get_nstype, ns_get_parent, ns_get_userns, setns, unshare_fs,
};
pub(crate) use pre_exec::ExecHook;
pub(crate) use thread::{
    ioprio, kcmp, personality, sched_attr, securebits, set_fair_sched, timer_slack, FairSched,
    Shared, SCHED_RESET_ON_FORK,
};
// The models' threads have a CPU of their own (see `executor/mailbox.rs`).
#[cfg(not(loom))]
pub(crate) use thread::current_cpu;
