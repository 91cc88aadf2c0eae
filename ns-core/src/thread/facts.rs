//! The per-thread facts besides namespaces that a body could change and
//! that later bodies on the same worker would inherit: credentials,
//! capabilities (all five sets), `no_new_privs`, seccomp filters,
//! securebits, the signal mask, CPU affinity, speculation controls, the
//! execution domain (personality), scheduling (policy, nice, priority,
//! I/O priority), the timer slack, the fd table, and the filesystem
//! context (root, cwd and umask, with the mount each directory is seen
//! through).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::errno::Errno;
use crate::sys::{self, DirId, Shared};

/// The lines of `/proc/thread-self/status` that hold credentials: what the
/// origin thread must share with the main thread.
const CREDENTIAL_KEYS: [&str; 11] = [
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

/// The other lines of `/proc/thread-self/status` that describe per-thread
/// state a body can change with raw system calls: the signal mask
/// (`pthread_sigmask`), the CPU affinity (`sched_setaffinity`) and the
/// speculation controls (`PR_SET_SPECULATION_CTRL`). One read covers these
/// and the credentials (`setresuid`, `setgroups`, `capset`,
/// `PR_CAPBSET_DROP`, `PR_CAP_AMBIENT`, `PR_SET_NO_NEW_PRIVS`, `seccomp`),
/// exactly.
const OTHER_KEYS: [&str; 4] = [
    "SigBlk",
    "Cpus_allowed",
    "Speculation_Store_Bypass",
    "SpeculationIndirectBranch",
];

/// Whether a thread shares something with the origin thread, hence with
/// the process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sharing {
    /// Shared (`kcmp`).
    Shared,
    /// Not shared although it should be.
    Detached,
    /// `kcmp` is not available: sharing cannot be checked.
    Unknown,
}

/// Where a thread's root, cwd and umask live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fs {
    /// Shared with the origin thread, or not.
    Process(Sharing),
    /// Private to the thread (after `unshare(CLONE_FS)`): root and cwd,
    /// with their mounts; the umask is among the status lines.
    Private { root: DirId, cwd: DirId },
}

/// What system calls report of a thread's scheduling and execution.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Execution {
    securebits: i32,
    personality: u32,
    timer_slack: i64,
    sched: [u64; 7],
    ioprio: i32,
}

/// A snapshot of a thread's facts; equal snapshots mean nothing changed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Facts {
    status: Vec<u8>,
    execution: Execution,
    files: Sharing,
    fs: Fs,
}

/// Reads the facts of the thread that created it, through fds opened once.
pub(crate) struct FactsReader {
    /// `/proc/thread-self/status`, re-read with `pread` at offset 0.
    status: OwnedFd,
    /// The last text read from it, kept to be read into again.
    text: Vec<u8>,
    /// `/proc/thread-self`, `O_PATH`, for `root` and `cwd`.
    task: OwnedFd,
    tid: i32,
    /// The thread whose fd table and fs context are the process's.
    origin_tid: i32,
}

impl FactsReader {
    /// Opens the calling thread's files.
    pub(crate) fn new(origin_tid: i32) -> Result<FactsReader, Errno> {
        Ok(FactsReader {
            status: sys::open(Path::new("/proc/thread-self/status"))?,
            text: Vec::with_capacity(4096),
            task: sys::open_dir(Path::new("/proc/thread-self"))?,
            tid: nix::unistd::gettid().as_raw(),
            origin_tid,
        })
    }

    /// The calling thread's facts; `private_fs` for a thread that has its
    /// own root and cwd (a worker that entered a mount namespace).
    pub(crate) fn read(&mut self, private_fs: bool) -> Result<Facts, Errno> {
        sys::pread_into(self.status.as_fd(), &mut self.text)?;
        let mut status = Vec::with_capacity(512);
        for line in wanted_lines(&self.text, private_fs) {
            status.extend_from_slice(line);
            status.push(b'\n');
        }
        Ok(Facts {
            status,
            execution: execution()?,
            files: self.sharing(Shared::Files),
            fs: self.fs(private_fs)?,
        })
    }

    /// The process's thread count (`Threads:`), from the status text the
    /// last [`read`](Self::read) or [`unchanged`](Self::unchanged) read.
    pub(crate) fn threads(&self) -> Option<u32> {
        self.text
            .split(|b| *b == b'\n')
            .find_map(|line| line.strip_prefix(b"Threads:"))
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.trim().parse().ok())
    }

    /// Whether the calling thread's facts are still `facts`: what [`read`]
    /// compares, without building a snapshot (this runs after every call).
    ///
    /// [`read`]: FactsReader::read
    pub(crate) fn unchanged(&mut self, facts: &Facts, private_fs: bool) -> Result<bool, Errno> {
        sys::pread_into(self.status.as_fd(), &mut self.text)?;
        let mut rest = facts.status.as_slice();
        for line in wanted_lines(&self.text, private_fs) {
            match rest.strip_prefix(line).and_then(|r| r.strip_prefix(b"\n")) {
                Some(after) => rest = after,
                None => return Ok(false),
            }
        }
        Ok(rest.is_empty()
            && execution()? == facts.execution
            && self.sharing(Shared::Files) == facts.files
            && self.fs(private_fs)? == facts.fs)
    }

    /// Whether the thread shares `what` with the origin thread.
    fn sharing(&self, what: Shared) -> Sharing {
        if self.tid == self.origin_tid {
            return Sharing::Shared;
        }
        match sys::kcmp(self.tid, self.origin_tid, what) {
            Ok(true) => Sharing::Shared,
            Ok(false) => Sharing::Detached,
            Err(_) => Sharing::Unknown,
        }
    }

    fn fs(&self, private_fs: bool) -> Result<Fs, Errno> {
        Ok(if private_fs {
            Fs::Private {
                root: sys::dir_id_at(self.task.as_fd(), c"root")?,
                cwd: sys::dir_id_at(self.task.as_fd(), c"cwd")?,
            }
        } else {
            Fs::Process(self.sharing(Shared::Fs))
        })
    }
}

/// What system calls report of the calling thread's execution.
fn execution() -> Result<Execution, Errno> {
    Ok(Execution {
        securebits: sys::securebits()?,
        personality: sys::personality()?,
        timer_slack: sys::timer_slack()?,
        sched: sys::sched_attr()?,
        ioprio: sys::ioprio()?,
    })
}

/// The lines of a status text that [`Facts`] keep, in order.
fn wanted_lines(text: &[u8], private_fs: bool) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n').filter(move |line| {
        let key = line.split(|b| *b == b':').next().unwrap_or_default();
        CREDENTIAL_KEYS
            .iter()
            .chain(&OTHER_KEYS)
            .any(|k| k.as_bytes() == key)
            || (private_fs && key == b"Umask")
    })
}

impl Facts {
    /// What differs between two snapshots, for messages.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn describe_change(&self, now: &Facts) -> String {
        let before: Vec<&str> = std::str::from_utf8(&self.status)
            .unwrap_or("")
            .lines()
            .collect();
        let mut out: Vec<String> = std::str::from_utf8(&now.status)
            .unwrap_or("")
            .lines()
            .filter(|line| !before.contains(line))
            .map(|line| line.replace('\t', " "))
            .collect();
        if self.execution != now.execution {
            out.push(format!("{:?} (was {:?})", now.execution, self.execution));
        }
        if self.files != now.files {
            out.push(format!("fd table {:?} (was {:?})", now.files, self.files));
        }
        if self.fs != now.fs {
            out.push(format!("fs context {:?} (was {:?})", now.fs, self.fs));
        }
        out.join(", ")
    }

    /// Whether the thread shares its fs context with the process, as far
    /// as can be told.
    pub(crate) fn shares_fs(&self) -> bool {
        matches!(self.fs, Fs::Process(Sharing::Shared | Sharing::Unknown))
    }

    /// Whether the thread shares its fd table with the process, as far as
    /// can be told.
    pub(crate) fn shares_files(&self) -> bool {
        matches!(self.files, Sharing::Shared | Sharing::Unknown)
    }

    /// The credential lines compared with another thread's status text
    /// (the main thread's `/proc/self/status`).
    pub(crate) fn same_credentials_as(&self, status_text: &[u8]) -> Result<(), String> {
        let mine = String::from_utf8_lossy(&self.status);
        let theirs = String::from_utf8_lossy(status_text);
        for line in mine.lines() {
            let key = line.split(':').next().unwrap_or_default();
            if !CREDENTIAL_KEYS.contains(&key) {
                continue;
            }
            let other = theirs
                .lines()
                .find(|l| l.split(':').next() == Some(key))
                .unwrap_or("");
            if other != line {
                return Err(format!(
                    "{key}: {} here, {} on the main thread",
                    line.split(':').nth(1).unwrap_or("").trim(),
                    other.split(':').nth(1).unwrap_or("?").trim()
                ));
            }
        }
        Ok(())
    }
}

/// The status-line parsing, on made-up texts (no system call: Miri runs
/// these).
#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tworker\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n\
                          Gid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\t000001ffffffffff\n\
                          NoNewPrivs:\t0\nSeccomp:\t0\nSigBlk:\t0000000000000000\n\
                          Cpus_allowed:\tf\nvoluntary_ctxt_switches:\t7\n";

    fn facts(status: &[u8]) -> Facts {
        Facts {
            status: status.to_vec(),
            execution: Execution {
                securebits: 0,
                personality: 0,
                timer_slack: 50_000,
                sched: [0; 7],
                ioprio: 0,
            },
            files: Sharing::Shared,
            fs: Fs::Process(Sharing::Shared),
        }
    }

    #[test]
    fn keeps_only_the_lines_a_body_could_change() {
        let kept: Vec<&[u8]> = wanted_lines(STATUS.as_bytes(), false).collect();
        let keys: Vec<&str> = kept
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap().split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "Uid",
                "Gid",
                "Groups",
                "CapEff",
                "NoNewPrivs",
                "Seccomp",
                "SigBlk",
                "Cpus_allowed"
            ]
        );
        // The umask counts only on a worker with a private fs context.
        assert!(wanted_lines(STATUS.as_bytes(), true).any(|l| l.starts_with(b"Umask:")));
        // A key is matched whole, not as a prefix.
        assert_eq!(wanted_lines(b"Uidx:\t1\nCapEffy:\t0", false).count(), 0);
        assert_eq!(wanted_lines(b"", true).count(), 0);
    }

    #[test]
    fn compares_credentials_line_by_line() {
        let mine = facts(b"Uid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\nSigBlk:\t1");
        assert_eq!(mine.same_credentials_as(STATUS.as_bytes()), Ok(()));
        let dropped = STATUS.replace("CapEff:\t000001ffffffffff", "CapEff:\t0000000000000000");
        let err = mine.same_credentials_as(dropped.as_bytes()).unwrap_err();
        assert!(err.starts_with("CapEff: 000001ffffffffff here, 0000000000000000"));
        // A line the other text lacks differs too.
        assert!(mine.same_credentials_as(b"Name:\tmain").is_err());
    }

    #[test]
    fn describes_what_changed() {
        let before = facts(b"Uid:\t0\t0\t0\t0\nSigBlk:\t0");
        let mut after = facts(b"Uid:\t1000\t1000\t1000\t1000\nSigBlk:\t0");
        after.files = Sharing::Detached;
        let change = before.describe_change(&after);
        assert!(change.starts_with("Uid: 1000 1000 1000 1000"), "{change}");
        assert!(
            change.contains("fd table Detached (was Shared)"),
            "{change}"
        );
        assert!(!change.contains("SigBlk"), "{change}");
        assert_eq!(before.describe_change(&before), "");
    }
}
