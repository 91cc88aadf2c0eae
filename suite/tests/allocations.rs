//! A warm call makes no heap allocation: not on the caller, not on the
//! worker before it hands the result back, not in the check after it. A
//! caller that calls now and then finds everything it touches cold, and
//! an allocation then costs a cache-cold trip through the allocator on
//! the latency path.
//!
//! This binary counts every allocation of the process (its own global
//! allocator), so each scenario runs alone, in a child process of its own
//! under a watchdog, with nothing else of the test harness running.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nsguard::{in_namespace, Executor, NsKind, NsSet};
use std::os::unix::fs::MetadataExt;

use nsguard_suite::{in_child_process, net_set, TempNs};

/// The system allocator, counting the allocations made through it.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The network namespace the calling thread is in, read with no
/// allocation (`nsguard_suite::thread_ino` formats its path).
fn net_ino() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("the thread's net link")
        .ino()
}

const LIMIT: Duration = Duration::from_secs(60);

/// How many calls a window of [`allocations_of`] makes.
const CALLS: u64 = 200;

/// What tells a pool that started or ended a worker: its live workers,
/// and the workers it retired or started beyond its cap so far.
fn pool_of(executor: &Executor) -> [u64; 4] {
    let stats = executor.stats();
    let retired = stats.retired;
    [
        stats.workers as u64,
        stats.overflowed,
        stats.nested_beyond_cap,
        retired.switch_failed
            + retired.namespaces_changed
            + retired.thread_state_changed
            + retired.guard_or_poison
            + retired.cannot_go_home,
    ]
}

/// How many threads the process has (`Threads:` of its status).
fn threads() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("the process's status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// The allocations the whole process made while `call` ran `CALLS` times,
/// back to back and then `gap` apart (a caller that calls now and then:
/// the worker parks between calls). Every call checks, by namespace id,
/// that it ran inside `ino`.
///
/// Starting a thread allocates, and so does a worker's first look at each
/// thread it has not seen before: a back-to-back caller makes the executor
/// start as many workers as keep up with it, which on a slow machine (an
/// emulated one) can take many calls. So each way runs windows of `CALLS`
/// calls, the first a warm-up, and counts only those over which `pool`
/// (see [`pool_of`]) and the process's thread count stayed the same, up
/// to `WINDOWS` of them; it reports the fewest allocations such a window
/// made, zero once the pool is settled unless every call allocates
/// (`u64::MAX`: no window was).
fn allocations_of(
    mut call: impl FnMut() -> u64,
    ino: u64,
    pool: impl Fn() -> [u64; 4],
) -> [u64; 2] {
    const WINDOWS: usize = 24;
    let gap = Duration::from_micros(300);
    let mut fewest = [u64::MAX; 2];
    for (way, pause) in [Duration::ZERO, gap].into_iter().enumerate() {
        for window in 0..WINDOWS {
            let pool_before = (pool(), threads());
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..CALLS {
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                assert_eq!(call(), ino, "a call ran outside its namespace");
            }
            // The last call's check runs after its caller has its result.
            std::thread::sleep(Duration::from_millis(20));
            let made = ALLOCATIONS.load(Ordering::Relaxed) - before;
            if window > 0 && (pool(), threads()) == pool_before {
                fewest[way] = fewest[way].min(made);
            }
            if fewest[way] == 0 {
                break;
            }
        }
    }
    fewest
}

#[test]
fn a_warm_run_allocates_nothing() {
    if !in_child_process("a_warm_run_allocates_nothing", LIMIT) {
        return;
    }
    let temp = TempNs::new(NsKind::Net);
    let set = net_set(&temp);
    let global = Executor::global().unwrap();
    let counted = allocations_of(|| set.run(net_ino).unwrap(), temp.ino(), || pool_of(global));
    assert_eq!(
        counted,
        [0, 0],
        "allocations over {CALLS} warm `NsSet::run` calls, back to back and spaced"
    );
}

#[test]
fn a_warm_call_of_an_executor_allocates_nothing_checked_or_not() {
    if !in_child_process(
        "a_warm_call_of_an_executor_allocates_nothing_checked_or_not",
        LIMIT,
    ) {
        return;
    }
    let temp = TempNs::new(NsKind::Net);
    let set = net_set(&temp);
    for check in [true, false] {
        let executor = Executor::builder().check_after_call(check).build().unwrap();
        let counted = allocations_of(
            || executor.run(&set, net_ino).unwrap(),
            temp.ino(),
            || pool_of(&executor),
        );
        assert_eq!(
            counted,
            [0, 0],
            "allocations over {CALLS} warm calls (check after call: {check}), back to \
             back and spaced"
        );
    }
}

#[in_namespace(set = set)]
fn where_am_i(set: &NsSet) -> Result<u64, nsguard::Error> {
    Ok(black_box(net_ino()))
}

#[test]
fn a_warm_in_namespace_function_allocates_nothing() {
    if !in_child_process("a_warm_in_namespace_function_allocates_nothing", LIMIT) {
        return;
    }
    let temp = TempNs::new(NsKind::Net);
    let set = net_set(&temp);
    let global = Executor::global().unwrap();
    let counted = allocations_of(|| where_am_i(&set).unwrap(), temp.ino(), || pool_of(global));
    assert_eq!(
        counted,
        [0, 0],
        "allocations over {CALLS} warm `#[in_namespace]` calls, back to back and spaced"
    );
}

#[test]
fn a_guard_allocates_nothing() {
    if !in_child_process("a_guard_allocates_nothing", LIMIT) {
        return;
    }
    let temp = TempNs::new(NsKind::Net);
    let set = net_set(&temp);
    let counted = allocations_of(
        || {
            let guard = set.enter().unwrap();
            let ino = net_ino();
            drop(guard);
            ino
        },
        temp.ino(),
        || [0; 4], // no worker involved
    );
    assert_eq!(
        counted,
        [0, 0],
        "allocations over {CALLS} guards entered and dropped"
    );
}
