//! The per-thread facts besides namespaces that a body could change and
//! that later bodies on the same worker would inherit: credentials,
//! capabilities (all five sets), `no_new_privs`, seccomp filters,
//! securebits, and the thread's filesystem context.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::errno::Errno;
use crate::sys;

/// The lines of `/proc/thread-self/status` that describe per-thread state a
/// body can change with raw system calls (`setresuid`, `setgroups`,
/// `capset`, `PR_CAPBSET_DROP`, `PR_CAP_AMBIENT`, `PR_SET_NO_NEW_PRIVS`,
/// `seccomp`). One read covers them all, exactly.
const STATUS_KEYS: [&str; 11] = [
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

/// Where a thread's root, cwd and umask live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fs {
    /// Shared with the origin thread, hence with the process
    /// (`kcmp(KCMP_FS)`).
    Shared,
    /// Private to the thread (after `unshare(CLONE_FS)`): root and cwd as
    /// `(st_dev, st_ino)`; the umask is among the status lines.
    Private { root: (u64, u64), cwd: (u64, u64) },
    /// Not shared with the origin thread although it should be.
    Detached,
    /// `kcmp` is not available: sharing cannot be checked.
    Unknown,
}

/// A snapshot of a thread's facts; equal snapshots mean nothing changed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Facts {
    status: Vec<u8>,
    securebits: i32,
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
    /// The thread whose fs context is the process's.
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
            securebits: sys::securebits()?,
            fs: self.fs(private_fs)?,
        })
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
            && sys::securebits()? == facts.securebits
            && self.fs(private_fs)? == facts.fs)
    }

    fn fs(&self, private_fs: bool) -> Result<Fs, Errno> {
        Ok(if private_fs {
            Fs::Private {
                root: sys::stat_at(self.task.as_fd(), "root")?,
                cwd: sys::stat_at(self.task.as_fd(), "cwd")?,
            }
        } else if self.tid == self.origin_tid {
            Fs::Shared
        } else {
            match sys::kcmp_fs(self.tid, self.origin_tid) {
                Ok(true) => Fs::Shared,
                Ok(false) => Fs::Detached,
                Err(_) => Fs::Unknown,
            }
        })
    }
}

/// The lines of a status text that [`Facts`] keep, in order.
fn wanted_lines(text: &[u8], private_fs: bool) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n').filter(move |line| {
        let key = line.split(|b| *b == b':').next().unwrap_or_default();
        STATUS_KEYS.iter().any(|k| k.as_bytes() == key) || (private_fs && key == b"Umask")
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
        if self.securebits != now.securebits {
            out.push(format!("securebits {:#x}", now.securebits));
        }
        if self.fs != now.fs {
            out.push(format!("fs context {:?} (was {:?})", now.fs, self.fs));
        }
        out.join(", ")
    }

    /// Whether the thread shares its fs context with the process, as far
    /// as can be told.
    pub(crate) fn shares_fs(&self) -> bool {
        matches!(self.fs, Fs::Shared | Fs::Unknown)
    }

    /// The status lines present in both, compared: the credentials and
    /// capability lines of another thread (read from
    /// `/proc/self/task/<tid>/status`).
    pub(crate) fn same_credentials_as(&self, status_text: &[u8]) -> Result<(), String> {
        let mine = String::from_utf8_lossy(&self.status);
        let theirs = String::from_utf8_lossy(status_text);
        for line in mine.lines() {
            let key = line.split(':').next().unwrap_or_default();
            if key == "Umask" {
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
