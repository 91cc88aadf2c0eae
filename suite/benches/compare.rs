//! One run, one table: the per-call cost of every strategy for running an
//! empty body in another network namespace, with ratios to the raw setns
//! pair and the CPU each call costs the whole process; what a warm call
//! and its post-call check are made of; the cost against the number of
//! namespaces in use, for every strategy (also drawn as an SVG); what
//! eviction costs; throughput with 8 concurrent callers; the CPU an idle
//! executor uses, and memory and threads after touching 1000 namespaces.
//! Needs CAP_SYS_ADMIN (run as root):
//!
//! ```text
//! cargo bench -p nsguard-suite --bench compare   # prints the tables, writes target/nsguard-compare.{csv,svg}
//! NSGUARD_BENCH_SVG=$PWD/docs/compare.svg cargo bench -p nsguard-suite --bench compare   # the README's plot
//! ```
//!
//! Each time is the median of 15 batches' mean per call, all measured in
//! this one run, one strategy after the other (the machine is shared:
//! compare ratios within a run, not figures across runs). CPU per call is
//! the process's CPU time (user + system, all threads) over the same
//! batches divided by the calls made.

use std::fmt::Write as _;
use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nsguard::{in_namespace, CommandExt, Executor, Namespace, NsKind, NsSet};

const BATCHES: usize = 15;

/// Calls per turn of a caller in the table of calls after idle.
const BLOCK: usize = 5;

/// A strategy of that table: its name and one call.
type Caller<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// What a call costs: the median over `BATCHES` batches of the mean time
/// per call, and the process's CPU time per call over those batches, in ns.
#[derive(Clone, Copy, Debug)]
struct Cost {
    wall: f64,
    cpu: f64,
    /// CPU time per call of the measuring thread alone.
    caller_cpu: f64,
}

/// Measures `f`. The batch size is chosen so that a batch takes about
/// `budget / BATCHES`.
fn measure(budget: Duration, mut f: impl FnMut()) -> Cost {
    // Calibrate.
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget / 20 || n < 3 {
        f();
        n += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / n as f64;
    let per_batch = ((budget.as_secs_f64() / BATCHES as f64) / per_call).max(1.0) as u64;
    let (cpu0, thread0) = (cpu_time(), thread_cpu_time());
    let mut means: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    let calls = (per_batch * BATCHES as u64) as f64;
    let cpu = (cpu_time() - cpu0).as_nanos() as f64 / calls;
    let caller_cpu = (thread_cpu_time() - thread0).as_nanos() as f64 / calls;
    means.sort_by(f64::total_cmp);
    Cost {
        wall: means[BATCHES / 2],
        cpu,
        caller_cpu,
    }
}

/// Calls per second with `threads` callers each running `f` for `span`,
/// and the process's CPU time per call in ns.
fn throughput(threads: usize, span: Duration, f: impl Fn(usize) + Sync) -> (f64, f64) {
    let stop = AtomicBool::new(false);
    let cpu0 = cpu_time();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, f) = (&stop, &f);
                s.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        f(t);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(span);
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().expect("caller")).sum()
    });
    let cpu = (cpu_time() - cpu0).as_nanos() as f64 / total.max(1) as f64;
    (total as f64 / span.as_secs_f64(), cpu)
}

/// An `O_PATH` fd of the namespace link `name` in `dir`, as the check and
/// the guard keep one per kind.
fn open_link(dir: &std::fs::File, name: &str) -> std::os::fd::OwnedFd {
    nix::fcntl::openat(
        dir,
        name,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .expect("open link")
}

/// Reads a namespace link through its fd, as the check and the guard do.
fn read_link(link: &std::os::fd::OwnedFd) {
    let mut buf = [0u8; 64];
    // SAFETY: an empty NUL-terminated path and a buffer of its size.
    let n = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(n > 0, "readlinkat");
    black_box(buf);
}

fn new_netns() -> Namespace {
    let set = NsSet::unshare(NsKind::Net).expect("NsSet::unshare(Net): run the benchmark as root");
    set.get(NsKind::Net)
        .expect("netns")
        .try_clone()
        .expect("dup")
}

#[in_namespace(net = ns)]
fn empty_body(ns: &Namespace) -> nsguard::Result<()> {
    black_box(());
    Ok(())
}

/// How a [`Helper`] and its caller wait for each other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Both spin, yielding now and then: the limit of handing a call to
    /// another thread, with no namespace work at all.
    Spin,
    /// The helper parks between calls and is woken for each; the caller
    /// yields once it has woken it and spins for the result, and the
    /// helper yields once it has handed it over, as nsguard's threads do:
    /// the limit when no thread waits spinning (a parked worker).
    Park,
    /// As `Park`, but the helper asks for a short time slice (300 us, as
    /// nsguard's worker does while it waits for a caller that calls now
    /// and then), so that on Linux 6.12 and later the caller's wake-up
    /// hands it the CPU on the spot and the caller does not yield: the
    /// kernel's part of nsguard's call after idle. Where the kernel keeps
    /// no slice of a thread's own, the caller yields as in `Park`.
    Preempt,
    /// Both park until the other wakes them: two wake-ups and, on one CPU,
    /// two context switches per call.
    BothPark,
}

/// A helper thread that takes calls with no work in them, waiting as
/// `waiting` says; its caller is the thread that starts it.
struct Helper {
    state: Arc<AtomicU32>, // 0 idle, 1 request, 2 done, 3 exit
    waiting: Waiting,
    /// Whether the caller yields to the helper once it has woken it.
    caller_yields: bool,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Helper {
    /// Starts the helper; with `pin`, on CPU 0 only.
    fn start(waiting: Waiting, pin: bool) -> Helper {
        let state = Arc::new(AtomicU32::new(0));
        let s = Arc::clone(&state);
        let caller = std::thread::current();
        let (short_tx, short_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            if pin {
                pin_to_cpu_0();
            }
            let short = waiting == Waiting::Preempt && ask_for_short_slice();
            let _ = short_tx.send(short);
            loop {
                let mut spins = 0u32;
                loop {
                    match s.load(Ordering::Acquire) {
                        1 => break,
                        3 => return,
                        _ if waiting == Waiting::Spin => {
                            spins += 1;
                            if spins % 64 == 0 {
                                std::thread::yield_now();
                            }
                            std::hint::spin_loop();
                        }
                        _ => std::thread::park(),
                    }
                }
                black_box(());
                s.store(2, Ordering::Release);
                match waiting {
                    Waiting::Spin => {}
                    Waiting::Park | Waiting::Preempt => std::thread::yield_now(),
                    Waiting::BothPark => caller.unpark(),
                }
            }
        });
        let short = short_rx.recv().expect("the helper's slice");
        Helper {
            state,
            waiting,
            caller_yields: waiting == Waiting::Park || (waiting == Waiting::Preempt && !short),
            handle: Some(handle),
        }
    }

    fn call(&self) {
        self.state.store(1, Ordering::Release);
        if self.waiting != Waiting::Spin {
            if let Some(h) = &self.handle {
                h.thread().unpark();
            }
        }
        if self.caller_yields {
            std::thread::yield_now();
        }
        let mut spins = 0u32;
        while self.state.load(Ordering::Acquire) != 2 {
            if self.waiting == Waiting::BothPark {
                std::thread::park();
                continue;
            }
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        self.state.store(0, Ordering::Relaxed);
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.state.store(3, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

struct Table {
    rows: Vec<(String, Cost)>,
    base: f64,
}

impl Table {
    fn add(&mut self, name: &str, cost: Cost) {
        println!(
            "  {name:<58} {:>9.2} us {:>7.2}x {:>9.2} us",
            cost.wall / 1000.0,
            cost.wall / self.base,
            cost.cpu / 1000.0,
        );
        self.rows.push((name.to_owned(), cost));
    }
}

/// CPU time of a clock, as a `Duration`.
fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The process's CPU time, user + system, all threads.
fn cpu_time() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The calling thread's CPU time.
fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The context switches of every thread of the process so far, voluntary
/// and involuntary.
fn context_switches() -> u64 {
    // SAFETY: `usage` is a valid rusage to write to.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    (usage.ru_nvcsw + usage.ru_nivcsw) as u64
}

/// Asks for a 300 us time slice for the calling thread, reset in its
/// children, as nsguard's waiting worker does; whether the kernel keeps
/// it (Linux 6.12 and later report it back).
fn ask_for_short_slice() -> bool {
    const SHORT_NS: u64 = 300_000;
    const RESET_ON_FORK: u64 = 0x01;
    // struct sched_attr, 56 bytes, as words: size and policy
    // (SCHED_OTHER), flags, nice and priority, runtime, the rest unused.
    let attr: [u64; 7] = [56, RESET_ON_FORK, 0, SHORT_NS, 0, 0, 0];
    // SAFETY: sched_setattr(2) reads the 56-byte struct `attr` holds;
    // pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr.as_ptr(), 0) };
    let mut back = [0u64; 7];
    // SAFETY: sched_getattr(2) writes at most 56 bytes into `back`.
    let read = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, back.as_mut_ptr(), 56, 0) };
    rc == 0 && read == 0 && back[3] == SHORT_NS
}

/// Pins the calling thread to CPU 0.
fn pin_to_cpu_0() {
    // SAFETY: a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is within the set's size.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: a valid cpu_set_t of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(rc, 0, "sched_setaffinity");
}

/// Two threads pinned to one CPU that hand a call back and forth, each
/// parking until the other wakes it: two context switches and two
/// wake-ups per call, the least a call costs when its caller and its
/// worker share one CPU.
fn same_cpu_round_trip(budget: Duration) -> Cost {
    std::thread::spawn(move || {
        pin_to_cpu_0();
        let helper = Helper::start(Waiting::BothPark, true);
        measure(budget, || helper.call())
    })
    .join()
    .expect("the round trip's caller")
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| l[name.len()..].trim().to_owned())
        .unwrap_or_default()
}

/// The kinds a worker's post-call check reads the link of, as named in
/// `/proc/thread-self/ns`.
const CHECKED_LINKS: [&str; 7] = [
    "net",
    "uts",
    "ipc",
    "mnt",
    "cgroup",
    "pid_for_children",
    "time_for_children",
];

/// One line of the plot: a strategy's cost per call against the number of
/// namespaces it goes round.
struct Series {
    name: &'static str,
    colour: &'static str,
    points: Vec<(usize, f64)>,
}

/// A log-log plot of `series`, as an SVG document.
fn svg(series: &[Series], title: &str) -> String {
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (70.0, 230.0, 40.0, 50.0);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| (p.0 as f64).log10()))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| (p.1 / 1000.0).log10()))
        .collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::MAX, f64::min),
        xs.iter().copied().fold(f64::MIN, f64::max),
    );
    let (y0, y1) = (
        ys.iter().copied().fold(f64::MAX, f64::min).floor(),
        ys.iter().copied().fold(f64::MIN, f64::max).ceil(),
    );
    let px = |x: f64| left + (x - x0) / (x1 - x0).max(1e-9) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / (y1 - y0).max(1e-9) * (h - top - bottom);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="14" text-anchor="middle">{title}</text>
"#,
        (w - right + left) / 2.0
    );
    // Grid: decades of time, and each measured namespace count.
    let mut decade = y0;
    while decade <= y1 + 1e-9 {
        let y = py(decade);
        let label = 10f64.powf(decade);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} µs</text>"##,
            w - right,
            left - 6.0,
            y + 4.0,
            if label < 1.0 {
                format!("{label:.1}")
            } else {
                format!("{label:.0}")
            }
        );
        decade += 1.0;
    }
    if let Some(first) = series.first() {
        for (n, _) in &first.points {
            let x = px((*n as f64).log10());
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{n}</text>"##,
                h - bottom,
                h - bottom + 16.0
            );
        }
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">namespaces used in turn (log scale)</text>
<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">time per call (log scale)</text>"#,
        (w - right + left) / 2.0,
        h - 12.0,
        (h - bottom + top) / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(n, ns)| {
                format!(
                    "{:.1},{:.1}",
                    px((*n as f64).log10()),
                    py((ns / 1000.0).log10())
                )
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/>"#,
            c = s.colour,
            p = points.join(" ")
        );
        for p in &points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="3" fill="{}"/>"#,
                s.colour
            );
        }
        let ly = top + 10.0 + i as f64 * 20.0;
        let lx = w - right + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            s.colour,
            lx + 26.0,
            ly + 4.0,
            s.name
        );
    }
    out.push_str("</svg>\n");
    out
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("NSGUARD_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600),
    );
    let target = new_netns();
    let home = Namespace::current(NsKind::Net).expect("home netns");
    let set = NsSet::from(target.try_clone().expect("dup"));
    let path = format!("/proc/{}/fd/{}", std::process::id(), target.as_raw_fd());

    println!(
        "empty body in another network namespace, median of {BATCHES} batches, one run:\n\n  {:<58} {:>12} {:>8} {:>12}",
        "strategy", "time/call", "ratio", "CPU/call"
    );
    let base = measure(budget, || {
        setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
        black_box(());
        setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
    });
    let mut t = Table {
        rows: Vec::new(),
        base: base.wall,
    };
    t.add("1 raw setns pair, fds open (the limit in place)", base);
    let handoff = {
        let spinner = Helper::start(Waiting::Spin, false);
        measure(budget, || spinner.call())
    };
    t.add(
        "2 bare spinning handoff, no namespace work (the limit)",
        handoff,
    );
    let parker = Helper::start(Waiting::Park, false);
    let parking = measure(budget, || parker.call());
    t.add(
        "2 bare parking handoff: a parked helper woken for each call",
        parking,
    );
    let preempter = Helper::start(Waiting::Preempt, false);
    t.add(
        "2 the same, the helper with a short time slice (nsguard's waiting)",
        measure(budget, || preempter.call()),
    );
    let global = Executor::global().expect("executor");
    global.run(&set, || ()).expect("warm up");
    let (before, switches, wall) = (global.stats(), context_switches(), Instant::now());
    let warm = measure(budget, || set.run(|| black_box(())).expect("run"));
    let (after, warm_wall) = (global.stats(), wall.elapsed());
    let warm_calls = (after.calls - before.calls) as f64;
    let warm_switches = (context_switches() - switches) as f64 / warm_calls;
    let warm_woken = (after.woken - before.woken) as f64 / warm_calls;
    let warm_cpus = warm.cpu * warm_calls / warm_wall.as_nanos() as f64;
    t.add("3 NsSet::run, warm", warm);
    t.add(
        "3 #[in_namespace], warm",
        measure(budget, || empty_body(&target).expect("call")),
    );
    let unchecked = Executor::builder()
        .check_after_call(false)
        .build()
        .expect("executor");
    unchecked.run(&set, || ()).expect("warm up");
    let warm_unchecked = measure(budget, || {
        unchecked.run(&set, || black_box(())).expect("run");
    });
    t.add(
        "3 Executor::run, warm, check_after_call(false)",
        warm_unchecked,
    );
    // A process with many threads, some of them short-lived: a check after
    // a call that grew the thread count looks for threads a body left
    // inside, and reads only threads it has not seen. The CPU includes the
    // starts and ends of the short-lived threads. Measured once the 200
    // threads have started and each worker has seen them (a warm-up of
    // calls): the steady state.
    let stop = AtomicBool::new(false);
    let started = std::sync::Barrier::new(201);
    let crowded = std::thread::scope(|s| {
        let (stop, started) = (&stop, &started);
        let idle: Vec<_> = (0..200)
            .map(|_| {
                s.spawn(move || {
                    started.wait();
                    while !stop.load(Ordering::Acquire) {
                        std::thread::park();
                    }
                })
            })
            .collect();
        started.wait();
        s.spawn(move || {
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(2));
                std::thread::spawn(|| ()).join().expect("join");
            }
        });
        let warm_up = Instant::now();
        while warm_up.elapsed() < budget / 4 {
            set.run(|| ()).expect("warm up");
        }
        let cost = measure(budget, || set.run(|| black_box(())).expect("run"));
        stop.store(true, Ordering::Release);
        for thread in &idle {
            thread.thread().unpark();
        }
        cost
    });
    t.add(
        "3 NsSet::run, warm, beside 200 threads and one started and ended every 2 ms",
        crowded,
    );
    let many: Vec<NsSet> = (0..1000).map(|_| NsSet::from(new_netns())).collect();
    for n in [1usize, 10, 100, 1000] {
        let mut i = 0;
        t.add(
            &format!("4 NsSet::run, round-robin over {n} namespaces"),
            measure(budget, || {
                many[i % n].run(|| black_box(())).expect("run");
                i += 1;
            }),
        );
    }
    let mut i = 0;
    t.add(
        "4 Executor::run, round-robin over 1000, check_after_call(false)",
        measure(budget, || {
            unchecked
                .run(&many[i % 1000], || black_box(()))
                .expect("run");
            i += 1;
        }),
    );
    // This bench is built with the `tracing` feature on (a dev-dependency
    // turns it on) and no subscriber: what an event costs then. A warm call
    // that needs no switch emits none; a switch emits one.
    t.add(
        "  one tracing event, feature on, no subscriber",
        measure(budget, || tracing::event!(tracing::Level::TRACE, "probe")),
    );
    // What the guard cannot do without: one read of where the thread is
    // (through a link fd kept open, as the guard reads it), then the pair.
    let ns_dir = std::fs::File::open("/proc/thread-self/ns").expect("ns dir");
    let net_link = open_link(&ns_dir, "net");
    t.add(
        "5 the guard's floor: one readlinkat of where the thread is + the pair",
        measure(budget, || {
            read_link(&net_link);
            setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
            black_box(());
            setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
        }),
    );
    t.add(
        "5 NsSet::enter + drop (the guard)",
        measure(budget, || {
            let guard = set.enter().expect("enter");
            black_box(&guard);
        }),
    );
    t.add(
        "6 fresh thread per call (gonso Do, CNI WithNetNSPath)",
        measure(budget, || {
            std::thread::scope(|s| {
                s.spawn(|| {
                    setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
                    black_box(());
                })
                .join()
                .expect("join")
            })
        }),
    );
    let fresh: Vec<NsSet> = (0..200).map(|_| NsSet::from(new_netns())).collect();
    let mut next = 0;
    t.add(
        "  cold: first NsSet::run into a namespace never used",
        measure(budget / 4, || {
            fresh[next % fresh.len()]
                .run(|| black_box(()))
                .expect("run");
            next += 1;
        }),
    );
    drop(fresh);
    let peer = netns_rs::get_from_path(&path).expect("netns-rs");
    t.add(
        "7 netns-rs NetNs::run",
        measure(budget, || {
            peer.run(|_| black_box(())).expect("netns-rs run");
        }),
    );
    t.add(
        "8 process per call: CommandExt::spawn_in(set) `true`",
        measure(budget * 2, || {
            let status = Command::new("true")
                .stdout(Stdio::null())
                .spawn_in(&set)
                .expect("spawn")
                .wait();
            assert!(status.expect("wait").success());
        }),
    );
    t.add(
        "8 process per call: `nsenter --net=PATH true`",
        measure(budget * 2, || {
            let status = Command::new("nsenter")
                .arg(format!("--net={path}"))
                .arg("true")
                .status();
            assert!(status.expect("nsenter").success());
        }),
    );

    // What a warm call is made of. The caller's CPU is its own thread's;
    // the rest of the process's CPU per call is the worker's: the handoff,
    // the body and (checked) the post-call check, whose parts follow,
    // measured here with the same system calls the check makes.
    // Callers that call now and then: the caller sleeps, then makes one
    // call, timed alone; the worker went idle meanwhile. The strategies
    // take turns of `BLOCK` calls, so that all of them meet the same
    // moments of the shared machine: a burst of noise lands on every row
    // alike, and the ratios between rows hold within the run.
    println!(
        "\na call after the caller was idle, median of the calls alone, \
         the strategies taking turns:\n"
    );
    println!(
        "  {:<40} {:>10} {:>10} {:>10}",
        "strategy", "200 us", "1 ms", "10 ms"
    );
    let gaps = [
        (Duration::from_micros(200), 200),
        (Duration::from_millis(1), 160),
        (Duration::from_millis(10), 100),
    ];
    let mut callers: Vec<Caller<'_>> = vec![
        (
            "NsSet::run",
            Box::new(|| set.run(|| black_box(())).expect("run")),
        ),
        (
            "#[in_namespace]",
            Box::new(|| empty_body(&target).expect("call")),
        ),
        (
            "netns-rs NetNs::run",
            Box::new(|| peer.run(|_| black_box(())).expect("netns-rs run")),
        ),
        ("bare parking handoff (row 2)", Box::new(|| parker.call())),
        (
            "the same, short slice (row 2)",
            Box::new(|| preempter.call()),
        ),
        (
            "raw setns pair",
            Box::new(|| {
                setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
                setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
            }),
        ),
    ];
    // Per caller and gap: the median call, and the CPU the process spends
    // besides the caller's own thread (the worker's handoff, body and
    // check, and any spinning) per second of the caller's wall time, what
    // a sporadic caller costs while idle. A call's share is counted from
    // the call to the end of the sleep after it, where its worker checks.
    let mut medians = vec![[0.0f64; 3]; callers.len()];
    let mut idle_cpu = vec![[0.0f64; 3]; callers.len()];
    for (g, (gap, samples)) in gaps.into_iter().enumerate() {
        let mut times = vec![Vec::with_capacity(samples); callers.len()];
        let mut others = vec![Duration::ZERO; callers.len()];
        let mut walls = vec![Duration::ZERO; callers.len()];
        std::thread::sleep(gap);
        for round in 0..samples.div_ceil(BLOCK - 1) {
            for k in 0..callers.len() {
                let c = (round + k) % callers.len();
                for call in 0..BLOCK {
                    let (cpu, own, wall) = (cpu_time(), thread_cpu_time(), Instant::now());
                    callers[c].1();
                    let took = wall.elapsed().as_secs_f64() * 1e6;
                    // The first call of a turn follows the other callers',
                    // not its own: it is not what this caller meets.
                    if call > 0 {
                        times[c].push(took);
                    }
                    std::thread::sleep(gap);
                    others[c] += (cpu_time() - cpu).saturating_sub(thread_cpu_time() - own);
                    walls[c] += wall.elapsed();
                }
            }
        }
        for (c, times) in times.iter_mut().enumerate() {
            times.sort_by(f64::total_cmp);
            medians[c][g] = times[times.len() / 2];
            idle_cpu[c][g] = others[c].as_secs_f64() / walls[c].as_secs_f64() * 1000.0;
        }
    }
    let peer_row = callers
        .iter()
        .position(|(name, _)| name.starts_with("netns-rs"))
        .expect("netns-rs row");
    let rows = |unit: &str, of: &dyn Fn(usize, usize) -> f64| {
        for (c, (name, _)) in callers.iter().enumerate() {
            let mut row = format!("  {name:<40}");
            for g in 0..gaps.len() {
                let _ = write!(row, " {:>7.2} {unit:<2}", of(c, g));
            }
            println!("{row}");
        }
    };
    rows("us", &|c, g| medians[c][g]);
    println!("\nthe same calls, against netns-rs's in the same rounds:\n");
    rows("x", &|c, g| medians[c][g] / medians[peer_row][g]);
    println!("\nthe same callers: CPU of the process's other threads per second:\n");
    println!(
        "  {:<40} {:>10} {:>10} {:>10}",
        "strategy", "200 us", "1 ms", "10 ms"
    );
    rows("ms", &|c, g| idle_cpu[c][g]);
    drop(callers);

    println!("\nwhat a warm call costs in CPU, per call:\n");
    let mut parts: Vec<(String, f64)> = Vec::new();
    let mut part = |name: &str, ns: f64| {
        println!("  {name:<66} {:>9.2} us", ns / 1000.0);
        parts.push((name.to_owned(), ns));
    };
    part("NsSet::run warm: the caller's thread", warm.caller_cpu);
    part(
        "NsSet::run warm: the worker (handoff, body, check)",
        warm.cpu - warm.caller_cpu,
    );
    part(
        "check_after_call(false) warm: the caller's thread",
        warm_unchecked.caller_cpu,
    );
    part(
        "check_after_call(false) warm: the worker (handoff, body)",
        warm_unchecked.cpu - warm_unchecked.caller_cpu,
    );
    let links: Vec<std::os::fd::OwnedFd> = CHECKED_LINKS
        .iter()
        .map(|name| open_link(&ns_dir, name))
        .collect();
    let by_name = measure(budget, || {
        for name in CHECKED_LINKS {
            black_box(nix::fcntl::readlinkat(&ns_dir, name).expect("readlinkat"));
        }
    });
    part(
        "  check: 7 namespace links, readlinkat(dir, name)",
        by_name.cpu,
    );
    let by_fd = measure(budget, || {
        for link in &links {
            read_link(link);
        }
    });
    part(
        "  check: 7 namespace links, readlinkat(link fd, \"\") (what it does)",
        by_fd.cpu,
    );
    let status = std::fs::File::open("/proc/thread-self/status").expect("status");
    let mut text = vec![0u8; 4096];
    let status_cost = measure(budget, || {
        let n = nix::sys::uio::pread(&status, &mut text, 0).expect("pread");
        black_box(n);
    });
    part(
        "  check: /proc/thread-self/status, one pread",
        status_cost.cpu,
    );
    // kcmp compares this thread with another live thread of the process,
    // as the check compares its worker with the origin thread.
    let tid = nix::unistd::gettid().as_raw();
    let (other_tid, other) = {
        let (tx, rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).expect("send tid");
            std::thread::park();
        });
        (rx.recv().expect("tid"), other)
    };
    let kcmp = |kind: libc::c_int| {
        // SAFETY: kcmp(KCMP_FS / KCMP_FILES) takes integers only.
        let r = unsafe { libc::syscall(libc::SYS_kcmp, tid, other_tid, kind, 0, 0) };
        assert!(r >= 0, "kcmp");
        black_box(r);
    };
    let kcmp_cost = measure(budget, || kcmp(3));
    part(
        "  check: kcmp(KCMP_FS) against the origin thread",
        kcmp_cost.cpu,
    );
    let securebits = measure(budget, || {
        // SAFETY: PR_GET_SECUREBITS takes no pointer.
        black_box(unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) });
    });
    part("  check: prctl(PR_GET_SECUREBITS)", securebits.cpu);
    let kcmp_files = measure(budget, || kcmp(2));
    other.thread().unpark();
    other.join().expect("join");
    part(
        "  check: kcmp(KCMP_FILES) against the origin thread",
        kcmp_files.cpu,
    );
    let persona = measure(budget, || {
        // SAFETY: personality(0xffffffff) only reads it.
        black_box(unsafe { libc::personality(0xffff_ffff) });
    });
    part("  check: personality(0xffffffff)", persona.cpu);
    let slack = measure(budget, || {
        // SAFETY: PR_GET_TIMERSLACK takes no pointer.
        black_box(unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) });
    });
    part("  check: prctl(PR_GET_TIMERSLACK)", slack.cpu);
    let mut attr = [0u64; 7];
    let sched = measure(budget, || {
        // SAFETY: sched_getattr(2) writes at most 56 bytes into `attr`.
        let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, attr.as_mut_ptr(), 56, 0) };
        black_box(r);
    });
    part("  check: sched_getattr", sched.cpu);
    let ioprio = measure(budget, || {
        // SAFETY: ioprio_get(2) takes integers only.
        black_box(unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) });
    });
    part("  check: ioprio_get", ioprio.cpu);
    let floor = by_fd.cpu
        + status_cost.cpu
        + kcmp_cost.cpu
        + securebits.cpu
        + kcmp_files.cpu
        + persona.cpu
        + slack.cpu
        + sched.cpu
        + ioprio.cpu;
    part("  the check's floor: the sum of its system calls", floor);
    part("  the bare spinning handoff (row 2)", handoff.cpu);
    part("  the bare parking handoff (row 2)", parking.cpu);
    let round_trip = same_cpu_round_trip(budget);
    part(
        "  a round trip between two threads on one CPU (2 switches)",
        round_trip.cpu,
    );
    println!(
        "  warm calls: {:.0}% woke a parked worker; {warm_switches:.2} context switches per call; {warm_cpus:.2} CPUs in use",
        warm_woken * 100.0
    );
    for (name, handoff) in [
        ("bare spinning handoff", handoff.cpu),
        ("bare parking handoff", parking.cpu),
        ("same-CPU round trip", round_trip.cpu),
    ] {
        let bound = floor + handoff;
        println!(
            "  against the floor plus the {name}: the worker {:.2}x, the whole call {:.2}x",
            (warm.cpu - warm.caller_cpu) / bound,
            warm.cpu / bound
        );
    }

    // The cost against the number of namespaces used in turn, for every
    // strategy that goes round them.
    println!("\ntime per call against the number of namespaces used in turn:\n");
    let counts = [1usize, 10, 100, 1000];
    let targets: Vec<&Namespace> = many
        .iter()
        .map(|s| s.get(NsKind::Net).expect("netns"))
        .collect();
    let many_paths: Vec<String> = targets
        .iter()
        .map(|ns| format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd()))
        .collect();
    let many_peers: Vec<netns_rs::NetNs> = many_paths
        .iter()
        .map(|p| netns_rs::get_from_path(p).expect("netns-rs"))
        .collect();
    type Strategy<'a> = Box<dyn FnMut(usize) + 'a>;
    let strategies: Vec<(&'static str, &'static str, Strategy<'_>)> = vec![
        (
            "raw setns pair",
            "#444444",
            Box::new(|i: usize| {
                setns(targets[i], CloneFlags::CLONE_NEWNET).expect("setns");
                setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
            }),
        ),
        (
            "NsSet::enter + drop",
            "#1f77b4",
            Box::new(|i: usize| drop(many[i].enter().expect("enter"))),
        ),
        (
            "NsSet::run (checked)",
            "#d62728",
            Box::new(|i: usize| many[i].run(|| black_box(())).expect("run")),
        ),
        (
            "run, check_after_call(false)",
            "#ff9896",
            Box::new(|i: usize| {
                unchecked.run(&many[i], || black_box(())).expect("run");
            }),
        ),
        (
            "netns-rs NetNs::run",
            "#2ca02c",
            Box::new(|i: usize| {
                many_peers[i].run(|_| black_box(())).expect("netns-rs");
            }),
        ),
        (
            "fresh thread per call",
            "#9467bd",
            Box::new(|i: usize| {
                std::thread::scope(|s| {
                    s.spawn(|| {
                        setns(targets[i], CloneFlags::CLONE_NEWNET).expect("setns");
                    })
                    .join()
                    .expect("join")
                })
            }),
        ),
    ];
    print!("  {:<32}", "strategy");
    for n in counts {
        print!(" {:>12}", format!("n = {n}"));
    }
    println!();
    let mut plot = Vec::new();
    for (name, colour, mut f) in strategies {
        print!("  {name:<32}");
        let mut points = Vec::new();
        for n in counts {
            let mut i = 0;
            let cost = measure(budget / 2, || {
                f(i % n);
                i += 1;
            });
            print!(" {:>9.2} us", cost.wall / 1000.0);
            points.push((n, cost.wall));
        }
        println!();
        plot.push(Series {
            name,
            colour,
            points,
        });
    }

    // Eviction: a program that opens the namespace for each call (as a CNI
    // plugin does) and drops its handle after it sends the worker home, and
    // the next call switches it in again; with another handle held, the
    // worker stays.
    println!("\nopening the namespace by path for each call:\n");
    // Held by a plain fd only, which nsguard does not count as a handle.
    let lone = nix::unistd::dup(new_netns()).expect("dup");
    let lone_path = format!("/proc/{}/fd/{}", std::process::id(), lone.as_raw_fd());
    let mut evictions = Vec::new();
    let before = global.stats();
    let evicting = measure(budget, || {
        let once = NsSet::from(Namespace::open(&lone_path, NsKind::Net).expect("open"));
        once.run(|| black_box(())).expect("run");
    });
    let evicted = global.stats().evictions - before.evictions;
    let held = Namespace::open(&lone_path, NsKind::Net).expect("open");
    let kept = measure(budget, || {
        let once = NsSet::from(Namespace::open(&lone_path, NsKind::Net).expect("open"));
        once.run(|| black_box(())).expect("run");
    });
    drop(held);
    println!(
        "  {:<58} {:>9.2} us {:>9.2} us CPU  ({evicted} evictions)",
        "open + run + drop, the last handle (evicts)",
        evicting.wall / 1000.0,
        evicting.cpu / 1000.0
    );
    println!(
        "  {:<58} {:>9.2} us {:>9.2} us CPU",
        "open + run + drop, another handle held (stays warm)",
        kept.wall / 1000.0,
        kept.cpu / 1000.0
    );
    evictions.push(("evicting".to_owned(), evicting));
    evictions.push(("kept".to_owned(), kept));
    println!(
        "\n8 concurrent callers on {} cores, calls per second:\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let span = budget * 2;
    let own: Vec<NsSet> = (0..8).map(|_| NsSet::from(new_netns())).collect();
    let homes: Vec<Namespace> = (0..8)
        .map(|_| Namespace::current(NsKind::Net).expect("home"))
        .collect();
    let mut rates = Vec::new();
    let mut rate = |name: &str, (r, cpu): (f64, f64)| {
        println!(
            "  {name:<58} {r:>12.0} /s {:>9.2} us CPU/call",
            cpu / 1000.0
        );
        rates.push((name.to_owned(), r, cpu));
    };
    rate(
        "1 raw setns pair (each caller switches itself)",
        throughput(8, span, |t| {
            let ns = own[t].get(NsKind::Net).expect("netns");
            setns(ns, CloneFlags::CLONE_NEWNET).expect("setns");
            setns(&homes[t], CloneFlags::CLONE_NEWNET).expect("setns back");
        }),
    );
    rate(
        "3 NsSet::run, one namespace per caller",
        throughput(8, span, |t| own[t].run(|| black_box(())).expect("run")),
    );
    rate(
        "3 NsSet::run, all callers on one namespace",
        throughput(8, span, |_| set.run(|| black_box(())).expect("run")),
    );
    rate(
        "3 Executor::run, one namespace per caller, check_after_call(false)",
        throughput(8, span, |t| {
            unchecked.run(&own[t], || black_box(())).expect("run")
        }),
    );
    rate(
        "3 #[in_namespace], one namespace per caller",
        throughput(8, span, |t| {
            empty_body(own[t].get(NsKind::Net).expect("netns")).expect("call")
        }),
    );
    rate(
        "5 NsSet::enter + drop",
        throughput(8, span, |t| drop(own[t].enter().expect("enter"))),
    );
    rate(
        "6 fresh thread per call",
        throughput(8, span, |t| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    setns(
                        own[t].get(NsKind::Net).expect("netns"),
                        CloneFlags::CLONE_NEWNET,
                    )
                    .expect("setns")
                })
                .join()
                .expect("join")
            })
        }),
    );

    let own_paths: Vec<String> = own
        .iter()
        .map(|set| {
            let fd = set.get(NsKind::Net).expect("netns").as_raw_fd();
            format!("/proc/{}/fd/{fd}", std::process::id())
        })
        .collect();
    let peers: Vec<netns_rs::NetNs> = own_paths
        .iter()
        .map(|p| netns_rs::get_from_path(p).expect("netns-rs"))
        .collect();
    rate(
        "7 netns-rs NetNs::run",
        throughput(8, span, |t| {
            peers[t].run(|_| black_box(())).expect("netns-rs run");
        }),
    );
    rate(
        "8 process per call: CommandExt::spawn_in(set) `true`",
        throughput(8, span, |t| {
            let child = Command::new("true").stdout(Stdio::null()).spawn_in(&own[t]);
            assert!(child.expect("spawn").wait().expect("wait").success());
        }),
    );
    rate(
        "8 process per call: `nsenter --net=PATH true`",
        throughput(8, span, |t| {
            let status = Command::new("nsenter")
                .arg(format!("--net={}", own_paths[t]))
                .arg("true")
                .status();
            assert!(status.expect("nsenter").success());
        }),
    );

    drop(unchecked);
    // Memory and threads after touching 1000 namespaces (above), then idle.
    let threads_busy = status_field("Threads:");
    let rss_peak = status_field("VmHWM:");
    let workers = global.workers();
    std::thread::sleep(Duration::from_millis(200)); // let spinners park
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(3));
    let idle_cpu = cpu_time() - before;
    println!("\nafter touching 1000 namespaces: peak RSS {rss_peak}, {threads_busy} threads, {workers} workers");
    println!(
        "CPU used by the whole process while idle for 3 s: {:.3} ms",
        idle_cpu.as_secs_f64() * 1000.0
    );

    let mut csv =
        String::from("section,strategy,value,unit,ratio_to_raw_setns_pair,cpu_ns_per_call\n");
    for (name, cost) in &t.rows {
        let _ = writeln!(
            csv,
            "per_call,\"{name}\",{:.1},ns,{:.3},{:.1}",
            cost.wall,
            cost.wall / base.wall,
            cost.cpu
        );
    }
    for (name, ns) in &parts {
        let _ = writeln!(csv, "cpu_parts,\"{}\",{ns:.1},ns,,", name.trim());
    }
    for series in &plot {
        for (n, ns) in &series.points {
            let _ = writeln!(
                csv,
                "namespaces_{n},\"{}\",{ns:.1},ns,{:.3},",
                series.name,
                ns / base.wall
            );
        }
    }
    for (name, cost) in &evictions {
        let _ = writeln!(
            csv,
            "open_run_drop,\"{name}\",{:.1},ns,{:.3},{:.1}",
            cost.wall,
            cost.wall / base.wall,
            cost.cpu
        );
    }
    for (name, r, cpu) in &rates {
        let _ = writeln!(
            csv,
            "throughput_8_callers,\"{name}\",{r:.0},calls/s,,{cpu:.1}"
        );
    }
    let _ = writeln!(
        csv,
        "resources,peak RSS after 1000 namespaces,\"{rss_peak}\",,,"
    );
    let _ = writeln!(
        csv,
        "resources,threads after 1000 namespaces,{threads_busy},,,"
    );
    let _ = writeln!(
        csv,
        "resources,idle CPU over 3 s,{:.3},ms,,",
        idle_cpu.as_secs_f64() * 1000.0
    );
    // The workspace's target directory: the first ancestor of this package
    // with a Cargo.lock holds it.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .unwrap_or(manifest);
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let picture = svg(
        &plot,
        "empty body in another netns: time per call, one run on this machine",
    );
    let mut outputs = vec![
        (target_dir.join("nsguard-compare.csv"), csv),
        (target_dir.join("nsguard-compare.svg"), picture.clone()),
    ];
    if let Some(extra) = std::env::var_os("NSGUARD_BENCH_SVG") {
        outputs.push((extra.into(), picture));
    }
    for (out, text) in outputs {
        match std::fs::write(&out, text) {
            Ok(()) => println!("written: {}", out.display()),
            Err(e) => eprintln!("cannot write {}: {e}", out.display()),
        }
    }
}
