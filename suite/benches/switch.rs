//! Per-call cost of running an empty body in another network namespace,
//! by each strategy. Needs CAP_SYS_ADMIN (run as root):
//!
//! ```text
//! cargo bench -p nsguard-suite --bench switch
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nix::sched::{setns, unshare, CloneFlags};
use nsguard::{in_namespace, Executor, Namespace, NsKind, NsSet};

/// A new network namespace, held by an fd only.
fn new_netns() -> Namespace {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): run the benchmark as root");
        Namespace::current(NsKind::Net).expect("open the new netns")
    })
    .join()
    .expect("helper thread")
}

#[in_namespace(net = ns)]
fn empty_body(ns: &Namespace) -> nsguard::Result<()> {
    black_box(());
    Ok(())
}

fn strategies(c: &mut Criterion) {
    let target = new_netns();
    let home = Namespace::current(NsKind::Net).expect("home netns");
    let set = NsSet::from(target.try_clone().expect("dup"));
    let mut g = c.benchmark_group("empty body in a netns");

    g.bench_function("raw setns pair (fds open)", |b| {
        b.iter(|| {
            setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
            black_box(());
            setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
        })
    });
    g.bench_function("NsSet::enter + drop", |b| {
        b.iter(|| {
            let guard = set.enter().expect("enter");
            black_box(&guard);
        })
    });
    let executor = Executor::global().expect("executor");
    executor.run(&set, || ()).expect("warm up");
    g.bench_function("NsSet::run, warm", |b| {
        b.iter(|| set.run(|| black_box(())).expect("run"))
    });
    g.bench_function("#[in_namespace], warm", |b| {
        b.iter(|| empty_body(&target).expect("call"))
    });
    let unchecked = Executor::builder()
        .check_after_call(false)
        .build()
        .expect("executor");
    unchecked.run(&set, || ()).expect("warm up");
    g.bench_function("Executor::run, warm, check_after_call(false)", |b| {
        b.iter(|| unchecked.run(&set, || black_box(())).expect("run"))
    });
    g.bench_function("fresh thread per call", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    setns(&target, CloneFlags::CLONE_NEWNET).expect("setns");
                    black_box(());
                })
                .join()
                .expect("join")
            })
        })
    });
    // The namespace part of a worker's check after a call, measured from
    // outside as the worker does it: one readlinkat per tracked link,
    // through an O_PATH fd of the link itself.
    let links: Vec<std::os::fd::OwnedFd> =
        ["cgroup", "ipc", "uts", "net", "pid_for_children", "mnt"]
            .into_iter()
            .map(|name| {
                nix::fcntl::open(
                    format!("/proc/thread-self/ns/{name}").as_str(),
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW,
                    nix::sys::stat::Mode::empty(),
                )
                .expect("open a namespace link")
            })
            .collect();
    g.bench_function("worker self-check after a call (namespace links)", |b| {
        b.iter(|| {
            for link in &links {
                black_box(nix::fcntl::readlinkat(link, "").expect("readlinkat"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, strategies);
criterion_main!(benches);
