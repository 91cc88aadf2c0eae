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
    /// The kept status lines, each with its newline, in the text's order.
    status: Vec<u8>,
    /// Whether the umask line is among them (a private fs context).
    private_fs: bool,
    execution: Execution,
    files: Sharing,
    fs: Fs,
}

impl Facts {
    /// Reads the calling thread's scheduling again, after nsguard itself
    /// changed it (a worker's time slice: `thread/slice.rs`).
    pub(crate) fn reread_sched(&mut self) -> Result<(), Errno> {
        self.execution.sched = sys::sched_attr()?;
        Ok(())
    }

    /// The kept status lines, each with its newline (the last one may
    /// lack it, as the text's last line may).
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.status.split_inclusive(|b| *b == b'\n')
    }
}

/// Where the kept lines and the `Threads:` line began in the last status
/// text read: where the next comparison looks first. The lines before
/// them (memory figures, for one) rarely change length, so the text's
/// layout rarely moves; when it does, a full scan finds the lines and
/// moves the hints.
#[derive(Clone, Debug, Default)]
struct Hints {
    lines: Vec<usize>,
    threads: Option<usize>,
}

/// Reads the facts of the thread that created it, through fds opened once.
pub(crate) struct FactsReader {
    /// `/proc/thread-self/status`, re-read with `pread` at offset 0.
    status: OwnedFd,
    /// The last text read from it, kept to be read into again.
    text: Vec<u8>,
    /// Where the lines the last comparison looked for were in `text`.
    hints: Hints,
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
            hints: Hints::default(),
            task: sys::open_dir(Path::new("/proc/thread-self"))?,
            tid: nix::unistd::gettid().as_raw(),
            origin_tid,
        })
    }

    /// The calling thread's facts; `private_fs` for a thread that has its
    /// own root and cwd (a worker that entered a mount namespace).
    pub(crate) fn read(&mut self, private_fs: bool) -> Result<Facts, Errno> {
        sys::pread_into(self.status.as_fd(), &mut self.text)?;
        Ok(Facts {
            status: kept_lines(&self.text, private_fs, &mut self.hints),
            private_fs,
            execution: execution()?,
            files: self.sharing(Shared::Files),
            fs: self.fs(private_fs)?,
        })
    }

    /// The process's thread count (`Threads:`), from the status text the
    /// last [`read`](Self::read) or [`unchanged`](Self::unchanged) read.
    pub(crate) fn threads(&mut self) -> Option<u32> {
        threads_in(&self.text, &mut self.hints)
    }

    /// Whether the calling thread's facts are still `facts`: what [`read`]
    /// compares, without building a snapshot (this runs after every call).
    ///
    /// [`read`]: FactsReader::read
    pub(crate) fn unchanged(&mut self, facts: &Facts, private_fs: bool) -> Result<bool, Errno> {
        sys::pread_into(self.status.as_fd(), &mut self.text)?;
        Ok(same_lines(&self.text, facts, private_fs, &mut self.hints)
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

/// The lines of a status text, each with its newline (the last one
/// without, if the text does not end in one), and where each begins.
fn lines_at(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = text.get(at..).filter(|rest| !rest.is_empty())?;
        let len = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = (at, &rest[..len]);
        at += len;
        Some(line)
    })
}

/// The key of a status line: what precedes its colon.
fn key(line: &[u8]) -> &[u8] {
    line.split(|b| *b == b':').next().unwrap_or_default()
}

/// The lines of a status text that [`Facts`] keep, in order, each with
/// its newline, and where each begins.
fn wanted_lines(text: &[u8], private_fs: bool) -> impl Iterator<Item = (usize, &[u8])> {
    lines_at(text).filter(move |(_, line)| {
        let key = key(line);
        CREDENTIAL_KEYS
            .iter()
            .chain(&OTHER_KEYS)
            .any(|k| k.as_bytes() == key)
            || (private_fs && key == b"Umask")
    })
}

/// The lines of `text` that [`Facts`] keep, one after the other; `hints`
/// learn where each was in `text`.
fn kept_lines(text: &[u8], private_fs: bool, hints: &mut Hints) -> Vec<u8> {
    let mut status = Vec::with_capacity(512);
    hints.lines.clear();
    for (at, line) in wanted_lines(text, private_fs) {
        status.extend_from_slice(line);
        hints.lines.push(at);
    }
    status
}

/// Whether `text` has exactly the kept lines of `facts`, read with the
/// same `private_fs`. Each line is looked for first where `hints` says the
/// last text had it: a match there, whole (it starts the text or follows a
/// newline, and ends with its own newline), is that key's one line, since
/// a status text names each key once. When every line matches where the
/// hints say, the text holds each kept line of `facts` unchanged, and no
/// other: the kernel writes the same keys every time, so the text can
/// have no kept line `facts` lack. Otherwise a full scan decides, and
/// records where the lines now are.
fn same_lines(text: &[u8], facts: &Facts, private_fs: bool, hints: &mut Hints) -> bool {
    let at_hint = |line: &[u8], at: usize| {
        (at == 0 || text.get(at - 1) == Some(&b'\n'))
            && text.get(at..at + line.len()) == Some(line)
            && line.ends_with(b"\n")
    };
    let mut hinted = hints.lines.iter();
    if facts.private_fs == private_fs
        && facts
            .lines()
            .all(|line| hinted.next().is_some_and(|&at| at_hint(line, at)))
        && hinted.next().is_none()
    {
        return true;
    }
    hints.lines.clear();
    let mut kept = facts.lines();
    for (at, line) in wanted_lines(text, private_fs) {
        if kept.next() != Some(line) {
            return false;
        }
        hints.lines.push(at);
    }
    kept.next().is_none()
}

/// The process's thread count, from the `Threads:` line of a status text:
/// looked for first where `hints` says it was.
fn threads_in(text: &[u8], hints: &mut Hints) -> Option<u32> {
    const KEY: &[u8] = b"Threads:";
    let at = hints
        .threads
        .filter(|&at| {
            (at == 0 || text.get(at - 1) == Some(&b'\n'))
                && text.get(at..).is_some_and(|rest| rest.starts_with(KEY))
        })
        .or_else(|| {
            lines_at(text)
                .find(|(_, line)| line.starts_with(KEY))
                .map(|(at, _)| at)
        });
    hints.threads = at;
    let rest = &text[at? + KEY.len()..];
    let line = &rest[..rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len())];
    std::str::from_utf8(line).ok()?.trim().parse().ok()
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
                          Gid:\t0\t0\t0\t0\nGroups:\t\nVmRSS:\t  900 kB\nThreads:\t7\n\
                          CapEff:\t000001ffffffffff\nNoNewPrivs:\t0\nSeccomp:\t0\n\
                          SigBlk:\t0000000000000000\nCpus_allowed:\tf\nvoluntary_ctxt_switches:\t7\n";

    /// The facts of a status text, as `FactsReader::read` takes them, and
    /// the hints it leaves.
    fn facts_of(text: &[u8], private_fs: bool) -> (Facts, Hints) {
        let mut hints = Hints::default();
        let facts = Facts {
            status: kept_lines(text, private_fs, &mut hints),
            private_fs,
            execution: Execution {
                securebits: 0,
                personality: 0,
                timer_slack: 50_000,
                sched: [0; 7],
                ioprio: 0,
            },
            files: Sharing::Shared,
            fs: Fs::Process(Sharing::Shared),
        };
        (facts, hints)
    }

    fn facts(text: &[u8]) -> Facts {
        facts_of(text, false).0
    }

    #[test]
    fn keeps_only_the_lines_a_body_could_change() {
        let kept: Vec<&[u8]> = wanted_lines(STATUS.as_bytes(), false)
            .map(|(_, line)| line)
            .collect();
        let keys: Vec<&str> = kept
            .iter()
            .map(|l| std::str::from_utf8(key(l)).unwrap())
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
        assert!(kept.iter().all(|l| l.ends_with(b"\n")));
        // The umask counts only on a worker with a private fs context.
        assert!(wanted_lines(STATUS.as_bytes(), true).any(|(_, l)| l.starts_with(b"Umask:")));
        // A key is matched whole, not as a prefix.
        assert_eq!(wanted_lines(b"Uidx:\t1\nCapEffy:\t0", false).count(), 0);
        assert_eq!(wanted_lines(b"", true).count(), 0);
        // The last line may lack its newline.
        let last: Vec<_> = wanted_lines(b"Name:\tw\nUid:\t0", false).collect();
        assert_eq!(last, [(8, &b"Uid:\t0"[..])]);
    }

    #[test]
    fn the_same_lines_are_found_where_they_were_and_where_they_moved() {
        let (facts, mut hints) = facts_of(STATUS.as_bytes(), false);
        let first = hints.lines.clone();
        assert!(same_lines(STATUS.as_bytes(), &facts, false, &mut hints));
        assert_eq!(hints.lines, first);
        // Lines before the kept ones change length: the kept lines moved,
        // and the scan finds them there.
        let moved = STATUS
            .replace("Name:\tworker", "Name:\tworker-2")
            .replace("VmRSS:\t  900 kB", "VmRSS:\t 1900 kB")
            .replace("State:\tS (sleeping)", "State:\tR (running)");
        assert!(same_lines(moved.as_bytes(), &facts, false, &mut hints));
        assert_ne!(hints.lines, first);
        assert_eq!(hints.lines[0], moved.find("Uid:").unwrap());
        assert!(same_lines(moved.as_bytes(), &facts, false, &mut hints));
    }

    #[test]
    fn a_changed_missing_or_extra_line_differs_whatever_the_hints_say() {
        let (facts, hints) = facts_of(STATUS.as_bytes(), false);
        let differs = |text: &str, private_fs: bool| {
            let mut hints = hints.clone();
            !same_lines(text.as_bytes(), &facts, private_fs, &mut hints)
        };
        let dropped = STATUS.replace("CapEff:\t000001ffffffffff", "CapEff:\t0000000000000000");
        assert!(differs(&dropped, false));
        // The same length, one digit changed, at the very place the hint
        // points to.
        assert!(differs(
            &STATUS.replace("Uid:\t0\t0\t0\t0", "Uid:\t0\t0\t0\t9"),
            false
        ));
        assert!(differs(&STATUS.replace("NoNewPrivs:\t0\n", ""), false));
        // The umask counts on a worker that now has a private fs context,
        // and the facts were taken without it.
        assert!(differs(STATUS, true));
        // A kept line's text at the hinted place that is not a line of its
        // own: the Uid line has become the end of the State line.
        let glued = STATUS.replace(")\nUid:", ")xUid:");
        assert_eq!(glued.find("Uid:"), STATUS.find("Uid:"));
        assert!(differs(&glued, false));
        // A kept line that goes on past where it used to end.
        assert!(differs(
            &STATUS.replace("Seccomp:\t0\n", "Seccomp:\t0 \n"),
            false
        ));
    }

    #[test]
    fn the_thread_count_is_read_where_it_was_or_where_it_moved() {
        let mut hints = Hints::default();
        assert_eq!(threads_in(STATUS.as_bytes(), &mut hints), Some(7));
        let at = hints.threads;
        assert_eq!(at, STATUS.find("Threads:"));
        let more = STATUS.replace("Threads:\t7", "Threads:\t12");
        assert_eq!(threads_in(more.as_bytes(), &mut hints), Some(12));
        assert_eq!(hints.threads, at);
        let moved = STATUS.replace("Name:\tworker", "Name:\tw");
        assert_eq!(threads_in(moved.as_bytes(), &mut hints), Some(7));
        assert_eq!(hints.threads, moved.find("Threads:"));
        // Where the hint points, `Threads:` ends the line before: no
        // thread count at all.
        let glued = STATUS.replace(" kB\nThreads:", "  kBThreads:");
        assert_eq!(glued.find("Threads:"), at);
        let mut stale = Hints {
            lines: Vec::new(),
            threads: at,
        };
        assert_eq!(threads_in(glued.as_bytes(), &mut stale), None);
        assert_eq!(threads_in(b"", &mut hints), None);
        assert_eq!(hints.threads, None);
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
