//! The global executor's home is the process's own namespaces even when
//! the main thread is inside a guard at its first use: a uts-only call made
//! then from another thread must run in the host's network namespace, not
//! in the guard's, and its workers must not keep the guard's namespace.
//!
//! The main thread must be the one inside the guard, so this binary has its
//! own `main` (`harness = false`). The scenario runs in a child process (this
//! binary again) under a watchdog.

use std::process::{Command, ExitCode};
use std::time::Duration;

use nsguard::{Namespace, NsKind, NsSet};
use nsguard_suite::{thread_ino, TempNs};

const CHILD: &str = "NSGUARD_MAIN_THREAD_GUARD_CHILD";

fn scenario() -> Result<(), String> {
    let host_net = thread_ino(NsKind::Net);
    let a = TempNs::new(NsKind::Net);
    let u = TempNs::new(NsKind::Uts);
    let set = NsSet::from(Namespace::open(a.path(), NsKind::Net).map_err(|e| e.to_string())?);
    let uts = NsSet::from(Namespace::open(u.path(), NsKind::Uts).map_err(|e| e.to_string())?);
    // The main thread enters the guard before anything else used nsguard.
    let guard = set.enter().map_err(|e| e.to_string())?;
    if thread_ino(NsKind::Net) != a.ino() {
        return Err("the guard did not switch the main thread".into());
    }
    let seen = std::thread::scope(|s| {
        s.spawn(|| uts.run(|| (thread_ino(NsKind::Net), thread_ino(NsKind::Uts))))
            .join()
    })
    .map_err(|_| "the calling thread panicked".to_string())?
    .map_err(|e| e.to_string())?;
    guard.restore().map_err(|e| e.to_string())?;
    if seen != (host_net, u.ino()) {
        return Err(format!(
            "a uts-only call ran in net:[{}] (the guard's is net:[{}], the host's \
             net:[{host_net}])",
            seen.0,
            a.ino()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return match scenario() {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("{why}");
                ExitCode::FAILURE
            }
        };
    }
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .env(CHILD, "1")
        .spawn()
        .expect("run the scenario");
    // Watchdog: a hang fails instead of hanging the suite.
    let limit = Duration::from_secs(60);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the scenario") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    match status {
        Some(s) if s.success() => {
            println!("main_thread_guard: 1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Some(s) => {
            println!("main_thread_guard: 0 passed, 1 failed ({s})");
            ExitCode::FAILURE
        }
        None => {
            println!("main_thread_guard: 0 passed, 1 failed (hung: killed after {limit:?})");
            ExitCode::FAILURE
        }
    }
}
