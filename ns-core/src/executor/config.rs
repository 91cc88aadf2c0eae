//! [`Config`]: how an executor behaves.

use std::time::Duration;

/// How an executor behaves; see [`ExecutorBuilder`](super::ExecutorBuilder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) spin: Duration,
    pub(crate) check_after_call: bool,
    pub(crate) overflow_after: Duration,
    /// How many workers the overflow rule may start beyond `max_workers`.
    pub(crate) max_overflow: usize,
}
