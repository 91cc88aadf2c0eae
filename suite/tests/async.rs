//! Async: `run_async` needs no runtime and never blocks; `#[in_namespace]
//! async fn` bodies are polled inside the namespaces, with tokio's reactor.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use nsguard::{in_namespace, Error, Namespace, NsKind, NsSet};
use nsguard_suite::{
    block_on, lo_up, main_thread_ino, net_set, thread_ino, tid, Latch, TempNs, PATIENCE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn run_async_needs_no_runtime() {
    let temp = TempNs::new(NsKind::Net);
    let set = net_set(&temp);
    assert_eq!(
        block_on(set.run_async(|| thread_ino(NsKind::Net))).unwrap(),
        temp.ino()
    );
    let panic = std::panic::catch_unwind(|| {
        block_on(set.run_async(|| -> () { std::panic::panic_any(7_u8) }))
    })
    .unwrap_err();
    assert_eq!(panic.downcast_ref::<u8>(), Some(&7));
    let user = NsSet::unshare(NsKind::User).unwrap();
    assert!(matches!(
        block_on(user.run_async(|| ())),
        Err(Error::UnsupportedOnThread { .. })
    ));
}

#[test]
fn run_async_never_blocks_the_caller_even_at_the_cap() {
    let temp = TempNs::new(NsKind::Net);
    let set = net_set(&temp);
    let executor = nsguard_suite::capped_executor(1);
    // The bodies wait until all five calls are submitted. Were submitting
    // to wait for a free worker, the first body would keep the only one
    // until the gate gave up, and the test would fail.
    let submitted = Latch::new(1, "all five calls submitted");
    let futures: Vec<_> = (0..5)
        .map(|_| {
            let submitted = submitted.clone();
            executor.run_async(&set, move || {
                submitted.wait();
                thread_ino(NsKind::Net)
            })
        })
        .collect();
    submitted.count_down();
    for f in futures {
        assert_eq!(block_on(f).unwrap(), temp.ino());
    }
    assert!(executor.workers() <= 1);
}

#[test]
fn dropping_the_future_is_safe_and_skips_a_call_not_started() {
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let (set_a, set_b) = (net_set(&a), net_set(&b));
    let executor = nsguard_suite::capped_executor(1);
    // Started, then dropped: it finishes on its worker, which is reused.
    let (started_tx, started) = mpsc::channel();
    let dropped = Latch::new(1, "both futures dropped");
    let busy = executor.run_async(&set_a, {
        let dropped = dropped.clone();
        move || {
            started_tx.send(tid()).unwrap();
            dropped.wait();
        }
    });
    // Queued behind it, then dropped: its body never runs.
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let queued = executor.run_async(&set_b, move || flag.store(true, Ordering::SeqCst));
    let busy_worker = started
        .recv_timeout(PATIENCE)
        .expect("the first call started on the only worker");
    drop(busy);
    drop(queued);
    dropped.count_down();
    let (worker, ino) =
        block_on(executor.run_async(&set_a, || (tid(), thread_ino(NsKind::Net)))).unwrap();
    assert_eq!(ino, a.ino());
    assert!(
        !ran.load(Ordering::SeqCst),
        "a dropped call that had not started did not run"
    );
    assert_eq!(
        worker, busy_worker,
        "the started call's worker finished and was reused"
    );
}

#[in_namespace(net = ns)]
async fn listen_inside(ns: &Namespace) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await
}

#[in_namespace(net = ns)]
async fn say_hello_from_inside(ns: &Namespace, addr: std::net::SocketAddr) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"hello").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_bound_by_an_async_body_serves_only_clients_inside() {
    let set = NsSet::unshare(NsKind::Net).unwrap();
    let ns = set.get(NsKind::Net).unwrap();
    lo_up(&set);
    let listener = listen_inside(ns).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        std::io::Result::Ok(text)
    });
    say_hello_from_inside(ns, addr).await.unwrap();
    assert_eq!(server.await.unwrap().unwrap(), "hello");
    // From the host there is nothing at that address.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[in_namespace(net = path)]
async fn check_every_poll(path: &Path, expected: u64, polls: usize) -> std::io::Result<usize> {
    for _ in 0..polls {
        assert_eq!(
            thread_ino(NsKind::Net),
            expected,
            "a poll ran outside the namespace"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(thread_ino(NsKind::Net), expected);
    Ok(polls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_bodies_are_polled_inside_only() {
    let temps: Vec<TempNs> = (0..8).map(|_| TempNs::new(NsKind::Net)).collect();
    let host = main_thread_ino(NsKind::Net);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (path, ino) = (temps[i % 8].path().to_path_buf(), temps[i % 8].ino());
        tasks.push(tokio::spawn(async move {
            let polls = check_every_poll(&path, ino, 20).await.unwrap();
            // Between polls the task runs on the runtime's own threads,
            // which never moved.
            assert_eq!(thread_ino(NsKind::Net), host);
            polls
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 20);
    }
}

/// A future that is pending once (waking itself during that poll, as a
/// future whose work is already done does), recording where each poll ran.
fn pending_once(
    polls: &std::sync::Mutex<Vec<u64>>,
) -> impl std::future::Future<Output = u8> + Send + '_ {
    use std::task::Poll;
    let mut first = true;
    std::future::poll_fn(move |cx| {
        polls.lock().unwrap().push(thread_ino(NsKind::Net));
        if std::mem::take(&mut first) {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(7)
        }
    })
}

/// `run_future`: every poll of any future runs on a worker inside, on the
/// global executor or a private one; the caller's thread never moves. A
/// future that wakes itself during a poll is polled again, also when the
/// caller parked while waiting for that poll (its wake unparks the same
/// thread, and must not be lost): with a spin of zero the caller always
/// parks. In a child process: a lost wake-up hangs.
#[test]
fn run_future_polls_any_future_inside() {
    if !nsguard_suite::in_child_process(
        "run_future_polls_any_future_inside",
        std::time::Duration::from_secs(60),
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = nsguard_suite::net_set(&a);
    let here = thread_ino(NsKind::Net);
    let polls = std::sync::Mutex::new(Vec::new());
    assert_eq!(
        nsguard_suite::block_on(set.run_future(pending_once(&polls))).unwrap(),
        7
    );
    assert_eq!(*polls.lock().unwrap(), [a.ino(), a.ino()]);
    assert_eq!(thread_ino(NsKind::Net), here);

    let parking = nsguard::Executor::builder()
        .max_workers(1)
        .spin(std::time::Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..20 {
        let polls = std::sync::Mutex::new(Vec::new());
        let fut = parking.run_future(&set, pending_once(&polls));
        assert_eq!(nsguard_suite::block_on(fut).unwrap(), 7);
        assert_eq!(*polls.lock().unwrap(), [a.ino(), a.ino()]);
    }
    assert_eq!(parking.stats().calls, 40);
}
