//! A [`ChildPlan`] that the child of a spawned [`Command`] carries out
//! before `exec`, through std's `pre_exec` hook.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sys::fork::ChildPlan;

/// What a spawned command's child does before exec. Shared with the hook
/// through an `Arc`, read-only while armed.
pub(crate) struct ExecHook {
    armed: AtomicBool,
    plan: ChildPlan,
    /// Where the child reports which step failed.
    report: RawFd,
}

impl ExecHook {
    /// Installs `plan` on `cmd`: the child of its next spawn carries it out
    /// before exec and reports a failed step on `report` (see
    /// [`ChildFailure::receive`](crate::sys::fork::ChildFailure::receive)),
    /// until [`disarm`](Self::disarm).
    pub(crate) fn install(cmd: &mut Command, plan: ChildPlan, report: RawFd) -> Arc<ExecHook> {
        let hook = Arc::new(ExecHook {
            armed: AtomicBool::new(true),
            plan,
            report,
        });
        let in_child = Arc::clone(&hook);
        // SAFETY: the hook runs in the forked child before exec and makes
        // only async-signal-safe system calls (ChildPlan::apply's setns,
        // unshare, mount, setgroups, setresgid, setresuid, chdir, and a
        // write) on data prepared before the fork; it allocates nothing (an
        // io::Error from an errno does not) and takes no lock.
        unsafe {
            cmd.pre_exec(move || in_child.run());
        }
        hook
    }

    /// The plan the child carries out.
    pub(crate) fn plan(&self) -> &ChildPlan {
        &self.plan
    }

    /// Makes the hook do nothing from now on: it stays on the `Command`
    /// (std has no way to remove it), but its fds are about to close.
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// In the child: async-signal-safe system calls only.
    fn run(&self) -> std::io::Result<()> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.plan
            .apply()
            .map_err(|failure| failure.send(self.report))
    }
}
