//! The threads and namespace fds of this process, read from `/proc`: for
//! tests that prove no thread strays into a namespace and nothing leaks.

use nsguard::NsKind;

use crate::ino::{thread_file, try_link_ino};

/// (thread name, kind, ino) for every thread of this process not owned by
/// nsguard (its threads are named `nsguard-*`) that is not in the host
/// namespace of a watched kind; `host` gives each watched kind's ino.
pub fn strays(host: &[(NsKind, u64)]) -> Vec<(String, NsKind, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = task.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        }; // exited
        if comm.starts_with("nsguard-") {
            continue;
        }
        for (kind, ino) in host {
            // None: the thread exited meanwhile.
            if let Some(seen) = try_link_ino(dir.join("ns").join(thread_file(*kind))) {
                if seen != *ino {
                    out.push((comm.trim().to_string(), *kind, seen));
                }
            }
        }
    }
    out
}

/// The names of the threads of this process in the namespace of `kind`
/// with inode `ino`.
pub fn threads_in(kind: NsKind, ino: u64) -> Vec<String> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if try_link_ino(task.path().join("ns").join(thread_file(kind))) == Some(ino) {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            out.push(comm.trim().to_owned());
        }
    }
    out
}

/// How many threads of this process have a name that starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

/// How many namespace fds this process holds (fds whose link targets are
/// like `net:[4026531833]`).
pub fn namespace_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|t| {
                    let t = t.to_string_lossy();
                    [
                        "cgroup:", "ipc:", "mnt:", "net:", "pid:", "time:", "user:", "uts:",
                    ]
                    .iter()
                    .any(|k| t.starts_with(k))
                })
                .count()
        })
        .unwrap_or(0)
}
