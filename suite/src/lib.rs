//! The test support library of nsguard: what the tests, benchmarks and
//! examples of this package share, in one place instead of a copy per test
//! binary.
//!
//! - [`ns`]: throw-away namespaces of every kind, and handles to them;
//! - [`ino`]: an independent view of which namespace a thread, a task, a
//!   path or a `/proc` link is, read from `/proc` (nothing here uses
//!   nsguard to check nsguard);
//! - [`census`]: the threads and namespace fds of this process, for tests
//!   that prove nothing strays or leaks;
//! - [`threads`]: the calling thread: its id, its status, a fresh one;
//! - [`process`]: child processes, and tests re-run in a child under a
//!   watchdog;
//! - [`cgroup`]: a real cap on this process's threads;
//! - [`faults`]: real `setns` and other system calls made to fail, on the
//!   calling thread only;
//! - [`panics`]: user code that panics, and what a panic said;
//! - [`executor`]: a capped nsguard executor, and a minimal `block_on`;
//! - [`signals`]: explicit signals to wait on where a test would otherwise
//!   sleep;
//! - [`kernel`]: what the running kernel has, and tests skipped for it;
//! - [`iproute`]: iproute2, for what nsguard must interoperate with;
//! - [`names`]: unique names for what tests create.
//!
//! Everything made here is removed on drop, also when a test fails. Every
//! item is re-exported at the root: `use nsguard_suite::{TempNs, thread_ino};`.
//!
//! A helper that a second test file needs belongs here, not copied into it.
//! Not published, and not an API: it changes with the tests.

#![warn(missing_docs)]

pub mod census;
pub mod cgroup;
pub mod executor;
pub mod faults;
pub mod ino;
pub mod iproute;
pub mod kernel;
pub mod names;
pub mod ns;
pub mod panics;
pub mod process;
pub mod signals;
pub mod threads;

pub use census::{namespace_fds, strays, threads_in, threads_named};
pub use cgroup::PidsLimit;
pub use executor::{block_on, capped_executor};
pub use faults::{
    drop_cap_sys_admin_on_this_thread, fail_setns_on_this_thread, fail_syscall_on_this_thread,
    Refusal,
};
pub use ino::{link_ino, main_thread_ino, path_ino, task_ino, thread_ino, try_link_ino};
pub use iproute::{ip, lo_up};
pub use kernel::{
    has_time_ns, kinds_this_kernel_has, require_no_time_ns, require_time_ns, skipped,
};
pub use names::unique_name;
pub use ns::{net_set, open, proc_pid, NamedNetns, TempNs};
pub use panics::{panic_message, PanicOnDrop};
pub use process::{in_child_process, in_child_process_spawned, mount_own_proc, ChildGuard};
pub use signals::{
    await_exits, held_at_exit, notify_on_exit, wait_until_gone, ExitHeld, HoldAtExit, Latch,
    PATIENCE,
};
pub use threads::{on_fresh_thread, status_line, tid};
