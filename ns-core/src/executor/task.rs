//! [`Task`]: a call for a worker, lent by a blocked caller or owned.

use crate::error::{Error, WorkerCause};
use crate::executor::handoff::ScopedTask;
use crate::executor::set_ref::SetRef;
use crate::handle::set::NsSet;
use crate::process::user_code::contain;
use crate::thread::location::Location;

/// The job of an owned task: runs the body (`None`) or reports why not.
/// It contains the user code it runs, drops and wakes; it is called
/// through [`contain`] all the same.
pub(crate) type OwnedJob = Box<dyn FnOnce(Option<Error>) + Send>;

/// A call for a worker, with the namespaces it wants, worked out once where
/// the call is made.
pub(crate) struct Task {
    pub(crate) work: Work,
    /// Every tracked kind the worker must be in: the target's namespaces,
    /// the executor's home for the rest.
    pub(crate) desired: Location,
}

/// Who owns a call's closure and namespaces.
pub(crate) enum Work {
    /// Lent by a caller that blocks until it is finished (`run`).
    Scoped(ScopedTask),
    /// Owned by the executor, with its own handles: nobody waits on a
    /// thread for it (`run_async`).
    Owned(Box<OwnedTask>),
}

/// A task that owns its namespaces and its job.
pub(crate) struct OwnedTask {
    pub(crate) set: NsSet,
    pub(crate) job: Option<OwnedJob>,
}

impl Drop for OwnedTask {
    /// A task dropped unrun still reports, so that its future completes.
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let _ = contain(move || {
                job(Some(Error::Worker {
                    cause: WorkerCause::Dropped,
                    reason: "the task was dropped before a worker could run it".into(),
                }));
            });
        }
    }
}

impl Task {
    /// The namespaces to run in.
    pub(crate) fn target(&self) -> SetRef<'_> {
        match &self.work {
            Work::Scoped(task) => *task.target(),
            Work::Owned(task) => SetRef::from_set(&task.set),
        }
    }

    /// Whether nobody blocks on this task, so it may wait in a queue.
    pub(crate) fn is_owned(&self) -> bool {
        matches!(self.work, Work::Owned(_))
    }

    /// Runs the body on this thread (`failure` = `None`) or reports
    /// `failure`, and releases whoever waits for the result.
    pub(crate) fn finish(self, failure: Option<Error>) {
        self.finish_then(failure, || ());
    }

    /// As [`finish`](Self::finish), and calls `ran` once the body has run
    /// (or was refused): for a blocking caller, before it is released.
    #[inline(always)]
    pub(crate) fn finish_then(self, failure: Option<Error>, ran: impl FnOnce()) {
        match self.work {
            Work::Scoped(task) => task.finish(failure, ran),
            Work::Owned(mut task) => {
                if let Some(job) = task.job.take() {
                    let _ = contain(move || job(failure));
                }
                ran();
            }
        }
    }
}
