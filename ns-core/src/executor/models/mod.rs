//! Loom models of the executor's concurrency: the handoff (`handoff.rs`),
//! dispatch at and beyond the cap (`scheduler.rs`), and a namespace let go
//! of while a call for it is dispatched (`go_home.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p nsguard-core --release --lib loom -- --nocapture --test-threads=1
//! ```
//!
//! Under `--cfg loom` the executor's mutexes, condvars, atomics, parking
//! and clock are loom's (`crate::sync`), and loom runs each model through
//! every interleaving of its threads up to a preemption bound. The models
//! drive the real `Scheduler`, `Mailbox`, `handoff` and the worker's loop
//! (`worker::life`); only what a worker does to its thread is a stand-in
//! ([`ModelThread`]: no system call, it records where it "is"), and the
//! model's origin starts worker threads at once (`Origin::for_model`).
//! Every model prints how many interleavings it explored and how long it
//! took.

mod go_home;
mod handoff;
mod scheduler;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::error::{Error, Result, WorkerCause};
use crate::executor::config::Config;
use crate::executor::handoff::call;
use crate::executor::mailbox::Mailbox;
use crate::executor::scheduler::{Books, Scheduler};
use crate::executor::set_ref::SetRef;
use crate::executor::stats::Retirement;
use crate::executor::task::{Task, Work};
use crate::executor::worker::{self, WorkerThread};
use crate::handle::set::NsSet;
use crate::id::NsId;
use crate::kind::NsKind;
use crate::process::origin::{self, Origin};
use crate::sync::thread;
use crate::thread::location::Location;

/// Runs `model` through every interleaving loom finds within
/// `preemptions` preemptions (or `LOOM_MAX_PREEMPTIONS`), and prints how
/// many it explored and how long that took.
fn check(name: &str, preemptions: usize, model: impl Fn() + Send + Sync + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    let bound = builder.preemption_bound;
    let start = std::time::Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        model();
    });
    println!(
        "loom model {name}: {} interleavings (preemption bound {bound:?}) in {:.2?}",
        runs.load(Ordering::Relaxed),
        start.elapsed()
    );
}

/// Where the process's threads are: the home of every model's executor.
fn home() -> Location {
    static HOME: OnceLock<Location> = OnceLock::new();
    *HOME.get_or_init(|| Location::of_current_thread().expect("reading where this thread is"))
}

/// The models' origin: no thread behind it, see [`Origin::for_model`].
fn model_origin() -> &'static Origin {
    static ORIGIN: OnceLock<&'static Origin> = OnceLock::new();
    ORIGIN.get_or_init(|| Box::leak(Box::new(Origin::for_model(home()))))
}

/// `home` with the namespace of `kind` numbered `ino` (a made-up inode:
/// nothing opens it).
fn at(kind: NsKind, ino: u64) -> Location {
    home().overlaid([NsId::new(kind, 0, ino)])
}

/// Settings for a model: no spinning unless asked, no check (the model's
/// workers make no system call), timeouts that never or always fire.
fn config(max_workers: usize, max_overflow: usize) -> Config {
    Config {
        max_workers,
        idle_timeout: Duration::MAX,
        spin: Duration::ZERO,
        check_after_call: false,
        overflow_after: Duration::MAX,
        max_overflow,
    }
}

/// A new executor's books, whose workers run [`model_main`].
fn scheduler(config: Config) -> Arc<Scheduler> {
    Scheduler::new(config, NsSet::new(), model_origin(), model_main).expect("an empty home")
}

loom::lazy_static! {
    /// Worker threads that ended in this execution.
    static ref EXITED: AtomicUsize = AtomicUsize::new(0);
    /// The most worker threads alive at once in this execution.
    static ref PEAK: AtomicUsize = AtomicUsize::new(0);
}

/// Worker threads started and not yet ended.
fn alive() -> usize {
    origin::model_threads_started() - EXITED.load(Ordering::Relaxed)
}

/// The most worker threads that were alive at once.
fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Counts a worker thread among the ended ones when it ends.
struct Exits;

impl Drop for Exits {
    fn drop(&mut self) {
        EXITED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The models' [`WorkerMain`](crate::executor::scheduler::WorkerMain): the
/// real worker loop on a [`ModelThread`].
fn model_main(scheduler: Arc<Scheduler>, mailbox: Arc<Mailbox>, first: Task) {
    PEAK.fetch_max(alive(), Ordering::Relaxed);
    let _exits = Exits;
    worker::life(&scheduler, &mailbox, first, |s| {
        Ok(ModelThread {
            location: s.home_location,
        })
    });
}

/// A worker's thread as the models see it: where it is, and nothing else.
struct ModelThread {
    location: Location,
}

impl WorkerThread for ModelThread {
    fn location(&self) -> Location {
        self.location
    }

    /// "Switches" (records the task's location), runs the task.
    fn serve(
        &mut self,
        scheduler: &Scheduler,
        task: Task,
        id: u64,
        _parked: bool,
        ran: &impl Fn(),
    ) -> Result<(), Retirement> {
        // Invariant of every model: a worker is given only a task it can
        // serve (for each one-way kind, already there or still home).
        let home = scheduler.home_location;
        for kind in scheduler.one_way.iter() {
            let (now, wanted) = (self.location.get(kind), task.desired.get(kind));
            assert!(
                now == wanted || now == home.get(kind),
                "a worker in {kind} namespace {now} was given a call for {wanted}"
            );
        }
        if self.location != task.desired {
            self.location = task.desired;
            scheduler.relocate(id, self.location);
        }
        task.finish_then(None, ran);
        Ok(())
    }

    /// Home again, unless it left home for a one-way kind.
    fn go_home(&mut self, scheduler: &Scheduler) -> Result<()> {
        let home = scheduler.home_location;
        if scheduler
            .one_way
            .iter()
            .any(|kind| self.location.get(kind) != home.get(kind))
        {
            return Err(Error::Worker {
                cause: WorkerCause::CannotReachHome,
                reason: "a model worker left home for a one-way kind".into(),
            });
        }
        self.location = home;
        Ok(())
    }
}

/// A blocking call, as `Executor::run_target` makes it (without its
/// checks of the calling thread, which read the kernel).
fn run<R: Send>(
    scheduler: &Arc<Scheduler>,
    desired: Location,
    f: impl FnOnce() -> R + Send,
) -> Result<R> {
    let empty = NsSet::new();
    let outcome = call(
        &SetRef::from_set(&empty),
        f,
        scheduler.config.spin,
        |scoped| {
            scheduler.dispatch(Task {
                work: Work::Scoped(scoped),
                desired,
            })
        },
    )?;
    match outcome {
        Ok(value) => Ok(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Wakes a parked model thread.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => return value,
            Poll::Pending => thread::park(),
        }
    }
}

/// Waits until every live worker is idle, then checks the books:
/// `total` equals the live workers, and `located` names exactly them.
fn settle(scheduler: &Scheduler) -> Books {
    loop {
        let books = scheduler.books();
        if books.idle.len() == alive() && books.waiting == 0 {
            assert_eq!(
                books.total,
                alive(),
                "total is not the live workers: {books:?}"
            );
            let mut located: Vec<u64> = books.located.iter().map(|(id, _)| *id).collect();
            let mut idle = books.idle.clone();
            located.sort_unstable();
            idle.sort_unstable();
            assert_eq!(located, idle, "located does not name the live workers");
            assert_eq!(books.pending, 0, "a queued task was left behind");
            assert_eq!(books.finishing, 0, "an idle worker counts as finishing");
            return books;
        }
        thread::yield_now();
    }
}

/// Shuts the executor down, waits for every worker thread to end, and
/// checks that the books are empty: no worker counted in `total` or named
/// in `located` outlives its thread, and no task is left queued.
fn shut_down_and_check(scheduler: &Scheduler) {
    scheduler.shutdown();
    origin::join_model_threads();
    let books = scheduler.books();
    assert_eq!(alive(), 0);
    assert_eq!(
        books.total, 0,
        "total counts workers that are gone: {books:?}"
    );
    assert!(
        books.located.is_empty(),
        "located names workers that are gone: {books:?}"
    );
    assert!(books.idle.is_empty() && books.pending == 0, "{books:?}");
    assert_eq!(
        books.finishing, 0,
        "a worker that is gone counts as finishing"
    );
}

/// The error a call gets when the executor shut down before it ran.
fn is_shut_down(err: &Error) -> bool {
    matches!(
        err,
        Error::Worker {
            cause: WorkerCause::ShutDown,
            ..
        }
    )
}
