//! [`Mailbox`]: how a worker thread is sent its next message ([`Msg`]).

use crate::executor::handoff::Handover;
use crate::executor::task::Task;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
use crate::sys::current_cpu;

/// A message to a worker.
pub(crate) enum Msg {
    Task(Task),
    /// Leave the namespaces you are in for home: the program dropped its
    /// last handle to one of them.
    GoHome,
    /// Exit now; the sender has already accounted for the worker.
    Exit,
}

/// The way to reach one worker thread: one message at a time, and a
/// flag it can spin on before it parks.
pub(crate) struct Mailbox {
    pub(crate) id: u64,
    inbox: Mutex<Option<Msg>>,
    ready: AtomicBool,
    /// Whether the worker is parked, or about to: a hint for senders (see
    /// [`Mailbox::send`]) and for the choice among idle workers
    /// ([`Mailbox::is_parked`]), never what a wake-up depends on; so
    /// `std`'s atomic even under loom, which need not explore its orders.
    parked: std::sync::atomic::AtomicBool,
    /// The CPU the worker last began to wait for a message on, and the
    /// CPU its last message was sent from ([`NO_CPU`]: not known). Hints
    /// for whoever waits, like `parked`: a thread spinning for another
    /// that waits for its CPU only delays it, and should yield at once.
    worker_cpu: std::sync::atomic::AtomicU32,
    sender_cpu: std::sync::atomic::AtomicU32,
    thread: Thread,
}

/// A CPU number no CPU has.
const NO_CPU: u32 = u32::MAX;

/// Under loom every thread of a model runs on one CPU: a worker that waits
/// for a message yields before it spins, and a sender to a worker that
/// spins yields to it before it waits, so the models go through both.
#[cfg(loom)]
fn current_cpu() -> Option<u32> {
    Some(0)
}

impl Mailbox {
    pub(crate) fn for_current_thread(id: u64) -> Mailbox {
        Mailbox {
            id,
            inbox: Mutex::new(None),
            ready: AtomicBool::new(false),
            parked: std::sync::atomic::AtomicBool::new(false),
            worker_cpu: std::sync::atomic::AtomicU32::new(NO_CPU),
            sender_cpu: std::sync::atomic::AtomicU32::new(NO_CPU),
            thread: thread::current(),
        }
    }

    /// Sends `msg` and wakes the worker if it is parked. Says whether it
    /// was parked, or waiting on the sender's own CPU: either way it runs
    /// only once the sender lets it.
    ///
    /// Inlined into the caller's `run` (see `Scheduler::dispatch`). The
    /// sender's CPU is asked for only when the worker is awake: it is for a
    /// worker that spins, and `sched_getcpu` lies on a page of libc's own.
    #[inline(always)]
    pub(crate) fn send(&self, msg: Msg) -> Handover {
        let here = if self.parked.load(Ordering::Relaxed) {
            NO_CPU
        } else {
            current_cpu().unwrap_or(NO_CPU)
        };
        self.sender_cpu.store(here, Ordering::Relaxed);
        *lock(&self.inbox) = Some(msg);
        self.ready.store(true, Ordering::Release);
        let parked = self.parked.load(Ordering::Relaxed);
        self.thread.unpark();
        if parked {
            Handover::Woken
        } else if here != NO_CPU && here == self.worker_cpu.load(Ordering::Relaxed) {
            Handover::Beside
        } else {
            Handover::Other
        }
    }

    /// Called by the worker as it begins to wait for a message: notes its
    /// CPU for senders, and says whether its last message came from this
    /// CPU. That sender most likely waits for the CPU now (for its result,
    /// or to send the next call), and spinning would only keep it waiting.
    pub(crate) fn begin_waiting(&self) -> bool {
        let here = current_cpu().unwrap_or(NO_CPU);
        self.worker_cpu.store(here, Ordering::Relaxed);
        here != NO_CPU && here == self.sender_cpu.load(Ordering::Relaxed)
    }

    /// Parks the worker's thread (it must be the calling thread) until it
    /// is unparked; senders meanwhile see it parked.
    pub(crate) fn park(&self) {
        self.parked.store(true, Ordering::Relaxed);
        thread::park();
        self.parked.store(false, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn take(&self) -> Option<Msg> {
        let msg = lock(&self.inbox).take();
        self.ready.store(false, Ordering::Release);
        msg
    }

    /// Whether the worker is parked, or about to: a hint for choosing
    /// among idle workers ([`Scheduler::dispatch`]), which may be stale by
    /// the time it is used.
    ///
    /// [`Scheduler::dispatch`]: crate::executor::scheduler::Scheduler::dispatch
    #[inline]
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use std::sync::Arc;

    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    use super::*;

    /// The CPUs this process may run on.
    fn allowed_cpus() -> Vec<usize> {
        let set = sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity");
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect()
    }

    /// Runs `f` on a new thread that may run on `cpu` only.
    fn on_cpu<T: Send>(cpu: usize, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut set = CpuSet::new();
                set.set(cpu).expect("a CPU within the set");
                sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
                f()
            })
            .join()
            .expect("the pinned thread")
        })
    }

    #[test]
    fn a_worker_and_its_sender_on_one_cpu_are_told_so() {
        let cpus = allowed_cpus();
        let here = cpus[0];
        let mailbox = on_cpu(here, || Arc::new(Mailbox::for_current_thread(1)));
        assert!(
            !on_cpu(here, || mailbox.begin_waiting()),
            "no message was sent yet"
        );
        // The worker spins (it does not park) on the sender's CPU.
        assert_eq!(on_cpu(here, || mailbox.send(Msg::GoHome)), Handover::Beside);
        assert!(
            on_cpu(here, || mailbox.begin_waiting()),
            "the last message came from the worker's CPU"
        );
        let Some(&there) = cpus.get(1) else {
            return; // one CPU: every sender is beside the worker
        };
        assert_eq!(on_cpu(there, || mailbox.send(Msg::GoHome)), Handover::Other);
        assert!(
            !on_cpu(here, || mailbox.begin_waiting()),
            "the last message came from another CPU"
        );
        // The worker waits on the other CPU now, the last sender's.
        assert!(on_cpu(there, || mailbox.begin_waiting()));
        assert_eq!(
            on_cpu(there, || mailbox.send(Msg::GoHome)),
            Handover::Beside
        );
        assert_eq!(on_cpu(here, || mailbox.send(Msg::GoHome)), Handover::Other);
    }
}
