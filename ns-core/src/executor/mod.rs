//! The executor: pinned worker threads that run code inside namespaces.
//!
//! A blocking call ([`Executor::run`], in `handle.rs`) lends its closure to
//! a worker through the handoff (`handoff.rs`, the lifetime erasure of a
//! borrowing call) as a [`Task`](task::Task); the scheduler
//! (`scheduler.rs`) picks the worker or starts one through the origin
//! thread; the worker (`worker.rs`) switches, runs, checks its thread and
//! reports back to the scheduler. `run_async` and `#[in_namespace] async
//! fn` submit owned tasks the same way. The process-wide list of executors
//! (`registry.rs`) sends workers home when the program drops its last
//! handle to a namespace.
//!
//! The scheduler and the worker refer to each other only through the
//! function the builder installs ([`scheduler::WorkerMain`]), so that the
//! books do not depend on the worker's code.

mod builder;
mod config;
mod global;
mod handle;
#[allow(unsafe_code)] // the lifetime erasure of a borrowing call, argued there
mod handoff;
mod mailbox;
// The loom models (`--cfg loom`): tests, left out of the import graph.
#[cfg(test)]
#[cfg(loom)]
mod models;
mod registry;
mod run_async;
mod run_future;
mod scheduler;
mod set_ref;
#[cfg(feature = "tokio")]
pub(crate) mod set_runtime;
mod stats;
mod task;
mod worker;

pub use builder::ExecutorBuilder;
pub use handle::Executor;
pub(crate) use registry::wait_until_left;
pub use run_async::RunAsync;
pub(crate) use run_future::RunFuture;
pub use set_ref::SetRef;
pub use stats::{Retired, Stats};
