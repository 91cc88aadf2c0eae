//! tokio and threads born inside. A body called from within a tokio runtime
//! runs in the runtime of its set (nsguard's, one per place): tokio works
//! there, sockets and timers it makes work from the caller's runtime, and
//! the blocking work it starts runs inside, on threads that never serve
//! anything else and are gone once the program lets go of the namespace.
//! No thread of the caller's runtime is ever started inside. Each scenario
//! runs in a child process, so that the census sees only its own threads.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use nsguard::{netns, Error, Namespace, NsKind, NsSet, ThreadOwner};
use nsguard_suite::{in_child_process, lo_up, net_set, panic_message, thread_ino, TempNs};

const LIMIT: Duration = Duration::from_secs(120);

/// A runtime as `#[tokio::main]` builds one.
fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The threads outside the process's namespaces that are not nsguard's.
fn strays_not_nsguards() -> Vec<nsguard::StrayThread> {
    nsguard::stray_threads()
        .unwrap()
        .into_iter()
        .filter(|t| t.owner == ThreadOwner::None)
        .collect()
}

#[nsguard::in_namespace(net = ns)]
async fn resolve_inside(ns: &Namespace) -> io::Result<(usize, u64)> {
    let found = tokio::net::lookup_host("localhost:80").await?.count();
    // Blocking work the body starts: where does it run?
    let there = tokio::task::spawn_blocking(|| thread_ino(NsKind::Net))
        .await
        .map_err(io::Error::other)?;
    Ok((found, there))
}

/// The seeds' bug through tokio: `lookup_host` in an async body makes the
/// runtime start a blocking thread from the worker, inside. Here it is the
/// set's runtime's thread: the blocking work runs inside, no thread of the
/// caller's runtime is left there, 48 host-side `spawn_blocking` tasks all
/// run at home, and `netns::delete` finds no thread keeping the namespace.
#[test]
fn lookup_host_in_a_body_leaves_no_thread_of_the_callers_runtime_inside() {
    if !in_child_process(
        "lookup_host_in_a_body_leaves_no_thread_of_the_callers_runtime_inside",
        LIMIT,
    ) {
        return;
    }
    let name = nsguard_suite::unique_name("nsguard-lookup");
    let scoped = netns::Scoped::add(&name).unwrap();
    let ns = scoped.namespace().unwrap().try_clone().unwrap();
    let ino = ns.id().ino();
    lo_up(&NsSet::from(ns.try_clone().unwrap()));
    let host = thread_ino(NsKind::Net);
    let runtime = multi_thread();
    runtime.block_on(async {
        let (found, there) = resolve_inside(&ns).await.unwrap();
        assert!(found > 0, "localhost resolves");
        assert_eq!(there, ino, "the body's blocking work runs inside");
        let mut places = Vec::new();
        for _ in 0..48 {
            places.push(tokio::task::spawn_blocking(|| thread_ino(NsKind::Net)));
        }
        for place in places {
            assert_eq!(place.await.unwrap(), host, "host work runs at home");
        }
    });
    assert_eq!(
        strays_not_nsguards(),
        vec![],
        "no thread but nsguard's is inside"
    );
    // Only nsguard's runtime's blocking thread was inside, and it goes when
    // the program lets go of the namespace.
    drop(ns);
    scoped.delete().unwrap();
    assert_eq!(
        nsguard_suite::threads_in(NsKind::Net, ino),
        Vec::<String>::new()
    );
    drop(runtime);
}

/// A sync body called from within a runtime can use tokio there (netns-rs
/// users make listeners and netlink connections this way): a tokio
/// listener and UDP socket made inside work from the caller's runtime, as
/// does one made by an async body, after the call returned.
#[test]
fn a_sync_body_called_from_a_runtime_makes_tokio_sockets_that_work() {
    if !in_child_process(
        "a_sync_body_called_from_a_runtime_makes_tokio_sockets_that_work",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    lo_up(&set);
    multi_thread().block_on(async {
        let listener = set
            .run(|| {
                let std = std::net::TcpListener::bind("127.0.0.1:0")?;
                std.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(std)
            })
            .unwrap()
            .unwrap();
        let udp = set
            .run(|| {
                let std = std::net::UdpSocket::bind("127.0.0.1:0")?;
                std.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(std)
            })
            .unwrap()
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let dialled = set.connect_tcp_async(addr, None);
        let (accepted, dialled) = tokio::join!(listener.accept(), dialled);
        accepted.unwrap();
        dialled.unwrap();
        // The UDP socket, polled from this runtime, with a timer made inside.
        let to = udp.local_addr().unwrap();
        let sender = set.bind_udp_async("127.0.0.1:0").await.unwrap();
        sender.send_to(b"ping", to).await.unwrap();
        let mut buf = [0; 4];
        // A timer made inside, awaited here.
        let sleep = set
            .run(|| tokio::time::sleep(Duration::from_millis(10)))
            .unwrap();
        sleep.await;
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), udp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"ping");
        // An async body's listener, used after the call.
        let listener = listen_inside(set.only().unwrap()).await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (accepted, dialled) =
            tokio::join!(listener.accept(), set.connect_tcp_async(addr, None));
        accepted.unwrap();
        dialled.unwrap();
    });
    assert_eq!(strays_not_nsguards(), vec![]);
}

#[nsguard::in_namespace(net = ns)]
async fn listen_inside(ns: &Namespace) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await
}

/// Outside any runtime a body has no tokio context either, and tokio's
/// panic says so: nsguard adds what to do.
#[test]
fn a_body_outside_any_runtime_panics_with_what_to_do() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        set.run(|| tokio::time::sleep(Duration::from_millis(1)))
    }));
    let message = panic_message(&*caught.expect_err("tokio panics"));
    assert!(
        message.contains("nsguard: this body ran on an nsguard worker"),
        "{message}"
    );
    assert!(message.contains("within a tokio runtime"), "{message}");
}

/// The trap `set.run(|| async { .. })`: the future would be polled on the
/// caller's thread, outside. It is refused before anything runs, and the
/// error names the fix; so are boxed futures and closures, and `run_async`.
#[test]
fn a_body_returning_a_future_or_a_closure_is_refused() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let ran = std::sync::atomic::AtomicBool::new(false);
    let refused = set.run(|| {
        ran.store(true, std::sync::atomic::Ordering::SeqCst);
        async { thread_ino(NsKind::Net) }
    });
    let Err(err @ Error::ReturnsCode { .. }) = refused else {
        panic!("not refused: {:?}", refused.map(|_| ()));
    };
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "nothing ran"
    );
    assert!(err.to_string().contains("run_future"), "{err}");
    assert!(matches!(
        set.run(|| Box::pin(async { 1 })),
        Err(Error::ReturnsCode { .. })
    ));
    assert!(matches!(set.run(|| || 1), Err(Error::ReturnsCode { .. })));
    let refused = nsguard_suite::block_on(set.run_async(|| async { 1 }));
    assert!(matches!(refused, Err(Error::ReturnsCode { .. })));
    // Values are not code.
    assert_eq!(set.run(|| thread_ino(NsKind::Net)).unwrap(), a.ino());
}

/// A runtime that lives inside a set: its workers and its blocking threads
/// enter the set when they start, and count as nsguard's.
#[test]
fn a_runtime_built_inside_runs_everything_inside() {
    if !in_child_process("a_runtime_built_inside_runs_everything_inside", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    let runtime = nsguard::runtime::build_inside(&mut builder, &set).unwrap();
    let (task, blocking) = runtime.block_on(async {
        let task = tokio::spawn(async { thread_ino(NsKind::Net) })
            .await
            .unwrap();
        let blocking = tokio::task::spawn_blocking(|| thread_ino(NsKind::Net))
            .await
            .unwrap();
        (task, blocking)
    });
    assert_eq!((task, blocking), (a.ino(), a.ino()));
    let strays = nsguard::stray_threads().unwrap();
    assert!(
        strays.iter().any(|t| t.owner == ThreadOwner::Runtime),
        "{strays:?}"
    );
    assert!(
        strays.iter().all(|t| t.owner != ThreadOwner::None),
        "{strays:?}"
    );
    drop(runtime);
    // Its threads exit once it is dropped, not necessarily before.
    eventually("the runtime's threads leave the namespace", || {
        nsguard_suite::threads_in(NsKind::Net, a.ino()).is_empty()
    });

    // A current-thread runtime runs its tasks on the caller of block_on,
    // which no hook moves: refused.
    let refused = nsguard::runtime::build_inside(
        tokio::runtime::Builder::new_current_thread().enable_all(),
        &set,
    );
    assert!(
        matches!(refused, Err(Error::InvalidConfig { .. })),
        "{refused:?}"
    );
}

/// A thread of a runtime built inside is nsguard's until it is gone: as it
/// stops, it is still inside, and still runs user code (the destructors of
/// its thread locals).
#[test]
fn a_runtime_thread_that_stops_is_nsguards_until_it_is_gone() {
    if !in_child_process(
        "a_runtime_thread_that_stops_is_nsguards_until_it_is_gone",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_all();
    let runtime = nsguard::runtime::build_inside(&mut builder, &set).unwrap();
    let (hold, held) = nsguard_suite::held_at_exit();
    let blocking = runtime
        .block_on(async {
            tokio::task::spawn_blocking(move || {
                hold.install();
                nsguard_suite::tid()
            })
            .await
        })
        .unwrap();
    runtime.shutdown_background();
    assert_eq!(held.wait(), blocking);
    assert_eq!(nsguard_suite::task_ino(blocking, NsKind::Net), a.ino());
    let strays = nsguard::stray_threads().unwrap();
    let listed = strays.iter().find(|t| t.tid == blocking);
    assert_eq!(
        listed.map(|t| t.owner),
        Some(ThreadOwner::Runtime),
        "{strays:?}"
    );
    drop(held);
    nsguard_suite::wait_until_gone(blocking);
}

/// A runtime the program builds, whose handle a body uses: without the
/// hook, the blocking thread it starts is born inside and stays; with
/// `keep_threads_home`, it comes home before it runs anything.
#[test]
fn keep_threads_home_brings_a_thread_born_inside_home() {
    if !in_child_process("keep_threads_home_brings_a_thread_born_inside_home", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let host = thread_ino(NsKind::Net);
    let blocking_from_a_body = |runtime: &tokio::runtime::Runtime| {
        let handle = runtime.handle().clone();
        let job = set
            .run(|| handle.spawn_blocking(|| thread_ino(NsKind::Net)))
            .unwrap();
        runtime.block_on(job).unwrap()
    };

    // Current-thread runtimes: no thread of their pool exists before the
    // body asks for one, so it is started from the worker.
    let plain = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        blocking_from_a_body(&plain),
        a.ino(),
        "born inside, it stays"
    );
    drop(plain);

    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    let kept = nsguard::runtime::keep_threads_home(&mut builder)
        .build()
        .unwrap();
    assert_eq!(blocking_from_a_body(&kept), host, "brought home first");
    assert_eq!(strays_not_nsguards(), vec![]);
}

/// `NsSet::only` and `NsSet::namespace`: a one-kind set's namespace
/// without `get(..).unwrap()`, and errors that name what the set has.
#[test]
fn a_sets_namespace_without_unwrap() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    assert_eq!(set.only().unwrap().id().ino(), a.ino());
    assert_eq!(set.namespace(NsKind::Net).unwrap().id().ino(), a.ino());
    let err = set.namespace(NsKind::Uts).unwrap_err();
    assert!(matches!(err, Error::NotInSet { .. }));
    assert!(
        err.to_string().contains("no uts namespace (it has: net)"),
        "{err}"
    );
    let err = NsSet::new().only().unwrap_err();
    assert!(err.to_string().contains("has: none"), "{err}");
}

/// The netns-rs idiom: a netlink connection made by a sync body called
/// from within a runtime. It is inside (a new network namespace has only
/// `lo`) and works from the caller's runtime; it keeps working after the
/// program drops its last handle to the namespace, as any socket made
/// inside does: the set runtime serving it is retired, not stopped, and
/// goes once the socket is closed and no task of its own is left. (Under
/// the watchdog: a reactor nobody drives would leave a dump waiting.)
#[test]
fn an_rtnetlink_connection_made_in_a_sync_body_is_inside_and_outlives_the_set() {
    use futures_util::TryStreamExt;
    if !in_child_process(
        "an_rtnetlink_connection_made_in_a_sync_body_is_inside_and_outlives_the_set",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    multi_thread().block_on(async {
        let (connection, handle, _) = set.run(rtnetlink::new_connection).unwrap().unwrap();
        let connection = tokio::spawn(connection);
        let links: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
        assert_eq!(links.len(), 1, "only lo: {links:?}");
        assert!(
            nsguard_suite::threads_named(THREAD) > 0,
            "the set runtime runs"
        );
        drop(set); // the program's last handle: the set runtime is retired
        let links: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
        assert_eq!(links.len(), 1, "still inside, and working: {links:?}");
        drop(handle);
        connection.abort();
        let _ = connection.await;
    });
    eventually(
        "the retired set runtime stops once its socket is closed",
        || nsguard_suite::threads_named(THREAD) == 0,
    );
}

/// Waits until `done` holds, failing with `what` after the suite's
/// patience: for threads, which exit after what makes them exit returns.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + nsguard_suite::PATIENCE;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "not yet: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The name of the set runtimes' threads.
const THREAD: &str = "nsguard-tokio";
