//! [`Mailbox`]: how a worker thread is sent its next message ([`Msg`]).

use std::time::Duration;

use crate::executor::handoff::Handover;
use crate::executor::task::Task;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::{Mutex, MutexGuard};

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
    /// [`Mailbox::send`]), never what a wake-up depends on; so `std`'s
    /// atomic even under loom, which need not explore its orders.
    parked: std::sync::atomic::AtomicBool,
    thread: Thread,
}

impl Mailbox {
    pub(crate) fn for_current_thread(id: u64) -> Mailbox {
        Mailbox {
            id,
            inbox: Mutex::new(None),
            ready: AtomicBool::new(false),
            parked: std::sync::atomic::AtomicBool::new(false),
            thread: thread::current(),
        }
    }

    pub(crate) fn send(&self, msg: Msg) -> Handover {
        *lock(&self.inbox) = Some(msg);
        self.ready.store(true, Ordering::Release);
        let parked = self.parked.load(Ordering::Relaxed);
        self.thread.unpark();
        if parked {
            Handover::Woken
        } else {
            Handover::Other
        }
    }

    /// Parks the worker's thread (it must be the calling thread) until it
    /// is unparked or, with a timeout, that long; senders meanwhile see it
    /// parked.
    pub(crate) fn park(&self, timeout: Option<Duration>) {
        self.parked.store(true, Ordering::Relaxed);
        match timeout {
            Some(timeout) => thread::park_timeout(timeout),
            None => thread::park(),
        }
        self.parked.store(false, Ordering::Relaxed);
    }

    pub(crate) fn take(&self) -> Option<Msg> {
        let msg = lock(&self.inbox).take();
        self.ready.store(false, Ordering::Release);
        msg
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
