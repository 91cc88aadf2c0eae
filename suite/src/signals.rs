//! Explicit signals between a test and the threads it waits for, instead of
//! sleeping "long enough": a latch that bodies wait on, a message when a
//! thread exits, and a thread held on its way out. Every wait gives up after [`PATIENCE`] with a panic that
//! says what did not happen, so a test whose failure mode is a hang fails
//! (and unwinds, removing what it made) instead of hanging.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen at once: a
/// watchdog for hangs, far beyond any scheduling delay on a slow machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Opens when it has been counted down `count` times; waiting threads go on
/// then. `Latch::new(1, ..)` is a gate the test opens; `Latch::new(n, ..)`
/// with each of `n` threads calling [`arrive_and_wait`](Self::arrive_and_wait)
/// holds them until all are running at once.
#[derive(Clone, Debug)]
pub struct Latch {
    state: Arc<(Mutex<State>, Condvar)>,
    what: &'static str,
}

#[derive(Debug)]
struct State {
    /// Count-downs still needed to open.
    left: usize,
    /// A wait ran out of patience: the others fail at once rather than each
    /// waiting its own [`PATIENCE`].
    broken: bool,
}

impl Latch {
    /// `what` says what the latch waits for, for the panic if it never opens.
    pub fn new(count: usize, what: &'static str) -> Latch {
        Latch {
            state: Arc::new((
                Mutex::new(State {
                    left: count,
                    broken: false,
                }),
                Condvar::new(),
            )),
            what,
        }
    }

    /// Counts the latch down once; the last count-down opens it.
    pub fn count_down(&self) {
        let (lock, opened) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        state.left = state.left.saturating_sub(1);
        if state.left == 0 {
            opened.notify_all();
        }
    }

    /// Blocks until the latch is open.
    ///
    /// # Panics
    ///
    /// If it is still closed after [`PATIENCE`].
    pub fn wait(&self) {
        let (lock, opened) = &*self.state;
        let state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut state, _) = opened
            .wait_timeout_while(state, PATIENCE, |s| s.left > 0 && !s.broken)
            .unwrap_or_else(|p| p.into_inner());
        if state.left > 0 {
            state.broken = true;
            opened.notify_all();
            panic!("waited {PATIENCE:?} in vain for: {}", self.what);
        }
    }

    /// [`count_down`](Self::count_down), then [`wait`](Self::wait): each of
    /// `n` threads says it is running and waits for the others.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    pub fn arrive_and_wait(&self) {
        self.count_down();
        self.wait();
    }
}

/// Sends the calling thread's id on `tx` when the thread exits: as its
/// thread-locals are destroyed, after everything it ran has returned. How a
/// test waits for a thread it has no handle to, such as a worker.
pub fn notify_on_exit(tx: mpsc::Sender<i32>) {
    struct OnExit(RefCell<Vec<mpsc::Sender<i32>>>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            let tid = crate::threads::tid();
            for tx in self.0.get_mut().drain(..) {
                let _ = tx.send(tid);
            }
        }
    }
    thread_local! {
        static ON_EXIT: OnExit = const { OnExit(RefCell::new(Vec::new())) };
    }
    ON_EXIT.with(|on_exit| on_exit.0.borrow_mut().push(tx));
}

/// Waits until every thread in `tids` has said (through [`notify_on_exit`])
/// that it exited.
///
/// # Panics
///
/// If some have not within [`PATIENCE`]; the message starts with `what`.
pub fn await_exits(exits: &mpsc::Receiver<i32>, tids: &[i32], what: &str) {
    let mut running: HashSet<i32> = tids.iter().copied().collect();
    let deadline = Instant::now() + PATIENCE;
    while !running.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match exits.recv_timeout(left) {
            Ok(tid) => {
                running.remove(&tid);
            }
            Err(_) => panic!("{what}: threads {running:?} still running after {PATIENCE:?}"),
        }
    }
}

/// A thread held on its way out, after all its code but the destructors of
/// its thread locals, which is user code that runs on a thread nsguard is
/// done with: see [`held_at_exit`].
#[derive(Debug)]
pub struct HoldAtExit {
    dropping: mpsc::Sender<i32>,
    go: mpsc::Receiver<()>,
}

/// The other end of a [`HoldAtExit`]: [`ExitHeld::wait`] for the thread,
/// drop to let it go.
#[derive(Debug)]
pub struct ExitHeld {
    dropping: mpsc::Receiver<i32>,
    _go: mpsc::Sender<()>,
}

/// A hold to [`install`](HoldAtExit::install) on the thread to hold, and
/// its other end.
pub fn held_at_exit() -> (HoldAtExit, ExitHeld) {
    let (dropping_tx, dropping) = mpsc::channel();
    let (go_tx, go) = mpsc::channel();
    (
        HoldAtExit {
            dropping: dropping_tx,
            go,
        },
        ExitHeld {
            dropping,
            _go: go_tx,
        },
    )
}

/// An installed [`HoldAtExit`], which holds its thread when dropped.
struct Installed(HoldAtExit);

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = self.0.dropping.send(crate::threads::tid());
        let _ = self.0.go.recv_timeout(PATIENCE);
    }
}

std::thread_local! {
    static HELD: RefCell<Option<Installed>> = const { RefCell::new(None) };
}

impl HoldAtExit {
    /// Holds the calling thread as it exits, until the [`ExitHeld`] is
    /// dropped (or for [`PATIENCE`] at most).
    pub fn install(self) {
        HELD.with(|held| *held.borrow_mut() = Some(Installed(self)));
    }
}

impl ExitHeld {
    /// Waits until the thread is held on its way out, and returns its id.
    ///
    /// # Panics
    ///
    /// After [`PATIENCE`], or if the hold was dropped without being
    /// installed.
    pub fn wait(&self) -> i32 {
        self.dropping
            .recv_timeout(PATIENCE)
            .expect("the held thread exits")
    }
}

/// Waits until thread `tid` of this process is gone.
///
/// # Panics
///
/// After [`PATIENCE`].
pub fn wait_until_gone(tid: i32) {
    let deadline = Instant::now() + PATIENCE;
    while std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() {
        assert!(Instant::now() < deadline, "thread {tid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}
