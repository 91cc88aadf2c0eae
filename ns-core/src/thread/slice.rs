//! A worker's time slice: short while it waits for a caller that calls now
//! and then, so that the caller's wake-up hands it the CPU at once.
//!
//! Linux 6.12's scheduler (EEVDF) lets a woken thread whose time slice is
//! shorter than the running thread's preempt it on the spot. A worker
//! parked for a sporadic caller that asks for a short slice therefore runs
//! as the caller's wake-up returns, on the caller's CPU, instead of after
//! the caller gives the CPU up with `sched_yield`: one system call and a
//! trip through the scheduler fewer per call. Older kernels report no
//! slice (`sched_getattr`'s runtime is 0 for a fair thread), and nothing
//! is asked of them.
//!
//! The short slice is asked for with `SCHED_FLAG_RESET_ON_FORK`, so that
//! threads and processes a body starts get the kernel's default slice, not
//! the worker's. It is not asked for a thread of a class other than the
//! fair one, or with a negative nice value (which reset-on-fork would not
//! pass on to children either), or that has a slice this short already.

use crate::errno::Errno;
use crate::sys::{self, FairSched, SCHED_RESET_ON_FORK};

/// The slice a worker asks for while it waits for a sporadic caller: well
/// under the kernel's default (0.7 or 0.75 ms, by kernel, times 1 + log2
/// of the CPUs, up to 8), and ten times the check a worker makes after
/// each call.
pub(crate) const SHORT_SLICE_NS: u64 = 300_000;

/// The calling thread's time slice, as the worker sets it.
#[derive(Debug)]
pub(crate) struct Slice {
    /// The thread's scheduling when it started: what `restore` goes back
    /// to; `None` if a short slice does not apply to it.
    base: Option<(FairSched, [u64; 7])>,
    short: bool,
}

impl Slice {
    /// The calling thread's slice as it is now, the one it keeps unless
    /// [`shorten`](Slice::shorten) is called.
    pub(crate) fn of_current_thread() -> Result<Slice, Errno> {
        let attr = sys::sched_attr()?;
        let base = FairSched::of(&attr)
            .filter(|s| s.nice >= 0 && s.runtime > SHORT_SLICE_NS)
            .map(|s| (s, attr));
        Ok(Slice { base, short: false })
    }

    /// Whether a short slice applies to this thread (see the module's
    /// documentation), as far as is known: not after a refused request.
    pub(crate) fn applies(&self) -> bool {
        self.base.is_some()
    }

    /// Whether the short slice is in force.
    pub(crate) fn is_short(&self) -> bool {
        self.short
    }

    /// Asks for the short slice; `Ok(false)` if it does not apply to this
    /// thread. On an error the thread's scheduling is unchanged, and it is
    /// not asked for again (a seccomp filter, say, refuses it every time).
    pub(crate) fn shorten(&mut self) -> Result<bool, Errno> {
        let Some((base, _)) = self.base else {
            return Ok(false);
        };
        if !self.short {
            let short = FairSched {
                flags: base.flags | SCHED_RESET_ON_FORK,
                runtime: SHORT_SLICE_NS,
                ..base
            };
            if let Err(errno) = sys::set_fair_sched(short) {
                self.base = None;
                return Err(errno);
            }
            self.short = true;
        }
        Ok(true)
    }

    /// Goes back to the slice the thread had when it started. The kernel
    /// reports a default slice as its length, which set again would make it
    /// a fixed one: the default is restored first, and the length only if
    /// the thread had a fixed slice of its own.
    pub(crate) fn restore(&mut self) -> Result<(), Errno> {
        let Some((base, attr)) = self.base else {
            return Ok(());
        };
        if !self.short {
            return Ok(());
        }
        sys::set_fair_sched(FairSched { runtime: 0, ..base })?;
        if sys::sched_attr()? != attr {
            sys::set_fair_sched(base)?;
        }
        self.short = false;
        Ok(())
    }
}
