//! Every thread of the process and where it is, read from
//! `/proc/self/task`: for the audit of threads away from home, and for the
//! executor's report of threads a body left inside.

use std::path::{Path, PathBuf};

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::thread::location::Location;

/// One thread of the process, as `/proc/self/task` shows it.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    /// Its id in the caller's pid namespace (`NSpid`'s last field), as
    /// `gettid` returns it.
    pub(crate) tid: i32,
    /// When it started (`starttime` in its `stat`): with `tid`, what tells
    /// it from a later thread given the same id.
    pub(crate) start: u64,
    /// Its name (`comm`).
    pub(crate) name: String,
    /// Where it is.
    pub(crate) location: Location,
}

/// Every thread of the process; threads that exit while they are read, or
/// are exiting already, are left out.
///
/// # Errors
///
/// [`Error::Io`] if `/proc/self/task` cannot be read.
pub(crate) fn tasks() -> Result<Vec<Task>> {
    let dir = Path::new("/proc/self/task");
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        op: "listing the threads in",
        kind: None,
        path: Some(dir.to_path_buf()),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Some(task) = read_task(&entry.path()) {
            out.push(task);
        }
    }
    Ok(out)
}

/// The kernel's flag of a task in `do_exit` (`PF_EXITING`, in the flags
/// field of `/proc/<tid>/stat`).
const PF_EXITING: u64 = 0x4;

/// What a task's `stat` says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Whether it is in `do_exit`: on its way out, past all user code.
    pub(crate) exiting: bool,
    /// When it started, in clock ticks after boot.
    pub(crate) start: u64,
}

/// Reads `stat` in `dir`, a task's directory in `/proc`.
pub(crate) fn stat(dir: &Path) -> std::io::Result<Stat> {
    let text = std::fs::read_to_string(dir.join("stat"))?;
    parse_stat(&text).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// The fields of a `stat` text that [`Stat`] holds.
fn parse_stat(text: &str) -> Option<Stat> {
    // After the name, which may hold spaces and parentheses: the state,
    // then ppid, pgrp, session, tty_nr, tpgid, flags (the 7th), and
    // starttime (the 20th).
    let (_, after_name) = text.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    let flags: u64 = fields.nth(6)?.parse().ok()?;
    let start: u64 = fields.nth(12)?.parse().ok()?;
    Some(Stat {
        exiting: flags & PF_EXITING != 0,
        start,
    })
}

/// When the calling thread started (see [`Stat::start`]); `None` where
/// `/proc` does not show it (a mount namespace with another pid
/// namespace's `/proc`).
pub(crate) fn own_start() -> Option<u64> {
    stat(Path::new("/proc/thread-self")).ok().map(|s| s.start)
}

/// This process's threads as `/proc/self/task` shows them, where it numbers
/// them as `gettid` does: for telling which threads have gone.
pub(crate) struct Departures {
    tasks: PathBuf,
}

impl Departures {
    /// `/proc/self/task`, if it numbers threads as `gettid` does for the
    /// calling thread: the calling thread's entry there is the calling
    /// thread (`/proc/thread-self`).
    pub(crate) fn here() -> Option<Departures> {
        let tasks = PathBuf::from("/proc/self/task");
        let me = stat(&tasks.join(nix::unistd::gettid().as_raw().to_string())).ok()?;
        (stat(Path::new("/proc/thread-self")).ok()? == me).then_some(Departures { tasks })
    }

    /// Whether thread `tid`, started at `start`, is gone: its entry is
    /// missing, exiting, or another thread's. `None` if the entry could not
    /// be read for another reason.
    pub(crate) fn is_gone(&self, tid: i32, start: u64) -> Option<bool> {
        match stat(&self.tasks.join(tid.to_string())) {
            Ok(now) => Some(now.exiting || now.start != start),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Some(true),
            Err(_) => None,
        }
    }
}

/// One thread; `None` if it exited meanwhile, or is exiting. A thread that
/// has been joined may still be on its way out of the kernel, with its
/// entry and namespace links readable for a moment after `join` returned:
/// it is exiting by then (the kernel sets `PF_EXITING` before it releases
/// the joiner).
fn read_task(dir: &Path) -> Option<Task> {
    let Stat { exiting, start } = stat(dir).ok()?;
    if exiting {
        return None;
    }
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    let name = field("Name").unwrap_or_default().to_owned();
    // The last id of NSpid is the innermost pid namespace's: the caller's.
    let tid = field("NSpid")
        .and_then(|ids| ids.split_whitespace().last())
        .and_then(|id| id.parse().ok())
        .unwrap_or(-1);
    let location = Location::of_task(&PathBuf::from(dir).join("ns")).ok()?;
    Some(Task {
        tid,
        start,
        name,
        location,
    })
}

/// The `stat` parsing, on made-up texts (no system call: Miri runs these).
#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's `stat` (Linux 6.x), its name `name`, its flags `flags`
    /// and its start time 4242.
    fn stat_text(name: &str, flags: u64) -> String {
        format!(
            "77 ({name}) S 1 77 77 0 -1 {flags} 150 0 0 0 3 1 0 0 20 0 2 0 4242 \
             9000000 900 18446744073709551615 1 1 0 0 0 0 0 4096 17734 0 0 0 -1 1 0 0 0 0 0"
        )
    }

    #[test]
    fn the_flags_and_start_are_read_after_any_name() {
        for name in ["nsguard-worker", "a b", "x) S 1 2 3 4 5 6 (y", ")", ""] {
            assert_eq!(
                parse_stat(&stat_text(name, 0x0040_0040)),
                Some(Stat {
                    exiting: false,
                    start: 4242
                }),
                "{name:?}"
            );
        }
        assert_eq!(
            parse_stat(&stat_text("exiting", 0x0040_0044)),
            Some(Stat {
                exiting: true,
                start: 4242
            })
        );
    }

    #[test]
    fn a_cut_or_garbled_text_is_none() {
        let text = stat_text("w", 0);
        assert_eq!(parse_stat(&text[..text.find("4242").unwrap()]), None);
        assert_eq!(parse_stat("77 (w S 1 77"), None);
        assert_eq!(parse_stat(&text.replace("4242", "soon")), None);
    }
}
