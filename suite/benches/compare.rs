//! One run, one table: the per-call cost of every strategy for running an
//! empty body in another network namespace, with ratios to the raw setns
//! pair, plus throughput with 8 concurrent callers, the CPU an idle
//! executor uses, and memory and threads after touching 1000 namespaces.
//! Needs CAP_SYS_ADMIN (run as root):
//!
//! ```text
//! cargo bench --bench compare          # prints the table, writes target/nsguard-compare.csv
//! ```
//!
//! Each figure is the median of 15 batches' mean per call, all measured in
//! this one run, one strategy after the other (the machine is shared:
//! compare ratios within a run, not figures across runs).

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

/// Median over `BATCHES` batches of the mean time per call, in ns. The batch
/// size is chosen so that a batch takes about `budget / BATCHES`.
fn measure(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Calibrate.
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget / 20 || n < 3 {
        f();
        n += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / n as f64;
    let per_batch = ((budget.as_secs_f64() / BATCHES as f64) / per_call).max(1.0) as u64;
    let mut means: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    means[BATCHES / 2]
}

/// Calls per second with `threads` callers each running `f` for `span`.
fn throughput(threads: usize, span: Duration, f: impl Fn(usize) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
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
    total as f64 / span.as_secs_f64()
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

/// A helper thread that spins waiting for work, then parks: the limit of
/// handing a call to another thread, with no namespace work at all.
struct Spinner {
    state: Arc<AtomicU32>, // 0 idle, 1 request, 2 done, 3 exit
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Spinner {
        let state = Arc::new(AtomicU32::new(0));
        let s = Arc::clone(&state);
        let handle = std::thread::spawn(move || loop {
            let mut spins = 0u32;
            loop {
                match s.load(Ordering::Acquire) {
                    1 => break,
                    3 => return,
                    _ => {
                        spins += 1;
                        if spins % 64 == 0 {
                            std::thread::yield_now();
                        }
                        std::hint::spin_loop();
                    }
                }
            }
            black_box(());
            s.store(2, Ordering::Release);
        });
        Spinner {
            state,
            handle: Some(handle),
        }
    }

    fn call(&self) {
        self.state.store(1, Ordering::Release);
        let mut spins = 0u32;
        while self.state.load(Ordering::Acquire) != 2 {
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        self.state.store(0, Ordering::Relaxed);
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.state.store(3, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Table {
    rows: Vec<(String, f64)>,
    base: f64,
}

impl Table {
    fn add(&mut self, name: &str, ns: f64) {
        println!(
            "  {name:<58} {:>11.2} us {:>8.2}x",
            ns / 1000.0,
            ns / self.base
        );
        self.rows.push((name.to_owned(), ns));
    }
}

fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| l[name.len()..].trim().to_owned())
        .unwrap_or_default()
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

    println!("empty body in another network namespace, median of {BATCHES} batches, one run:\n");
    let base = measure(budget, || {
        setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
        black_box(());
        setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
    });
    let mut t = Table {
        rows: Vec::new(),
        base,
    };
    t.add("1 raw setns pair, fds open (the limit in place)", base);
    {
        let spinner = Spinner::start();
        t.add(
            "2 bare spinning handoff, no namespace work (the limit)",
            measure(budget, || spinner.call()),
        );
    }
    let global = Executor::global().expect("executor");
    global.run(&set, || ()).expect("warm up");
    t.add(
        "3 NsSet::run, warm",
        measure(budget, || set.run(|| black_box(())).expect("run")),
    );
    t.add(
        "3 #[in_namespace], warm",
        measure(budget, || empty_body(&target).expect("call")),
    );
    let unchecked = Executor::builder()
        .check_after_call(false)
        .build()
        .expect("executor");
    unchecked.run(&set, || ()).expect("warm up");
    t.add(
        "3 Executor::run, warm, check_after_call(false)",
        measure(budget, || {
            unchecked.run(&set, || black_box(())).expect("run");
        }),
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
    let mut rate = |name: &str, r: f64| {
        println!("  {name:<58} {r:>12.0} /s");
        rates.push((name.to_owned(), r));
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

    let mut csv = String::from("section,strategy,value,unit,ratio_to_raw_setns_pair\n");
    for (name, ns) in &t.rows {
        let _ = writeln!(csv, "per_call,\"{name}\",{:.1},ns,{:.3}", ns, ns / base);
    }
    for (name, r) in &rates {
        let _ = writeln!(csv, "throughput_8_callers,\"{name}\",{r:.0},calls/s,");
    }
    let _ = writeln!(
        csv,
        "resources,peak RSS after 1000 namespaces,\"{rss_peak}\",,"
    );
    let _ = writeln!(
        csv,
        "resources,threads after 1000 namespaces,{threads_busy},,"
    );
    let _ = writeln!(
        csv,
        "resources,idle CPU over 3 s,{:.3},ms,",
        idle_cpu.as_secs_f64() * 1000.0
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nsguard-compare.csv");
    match std::fs::write(&out, csv) {
        Ok(()) => println!("\nwritten: {}", out.display()),
        Err(e) => eprintln!("cannot write {}: {e}", out.display()),
    }
}
