//! Every thread of the process and where it is, read from
//! `/proc/self/task`: for the audit of threads away from home, and for the
//! executor's report of threads a body left inside.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::thread::location::Location;

/// Where the process's threads are listed.
const TASKS: &str = "/proc/self/task";

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
    Ok(listing()?
        .filter_map(|(_, entry)| read_task(&entry.path()))
        .collect())
}

/// The entries of `/proc/self/task`, each with the number it is named by.
fn listing() -> Result<impl Iterator<Item = (u32, std::fs::DirEntry)>> {
    let dir = Path::new(TASKS);
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        op: "listing the threads in",
        kind: None,
        path: Some(dir.to_path_buf()),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Ok(entries.flatten().filter_map(|entry| {
        let number = entry.file_name().to_str()?.parse().ok()?;
        Some((number, entry))
    }))
}

/// The threads a census has read, so that the next one reads only the
/// others: a worker's census after each call that grew the thread count
/// then costs one listing of `/proc/self/task` and a read of each new
/// thread, not a read of every thread (about ten `/proc` reads each).
///
/// A thread is known by its entry's name and inode number. `/proc` gives
/// the entry of a thread that has gone and the entry of a later thread
/// with the same id different inodes, so a later thread is read. (If the
/// kernel ever made a new inode for a thread still alive, that thread
/// would only be read again.)
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Entry name → its inode number, and the thread's id as `gettid`
    /// returns it.
    entries: HashMap<u32, (u64, i32)>,
}

impl Seen {
    /// The threads that no earlier call saw, read in full, and the ids of
    /// every thread listed. Threads that exit while they are read, or are
    /// exiting already, are left out (and not remembered).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `/proc/self/task` cannot be listed.
    pub(crate) fn new_tasks(&mut self) -> Result<(Vec<Task>, BTreeSet<i32>)> {
        let mut listed = HashMap::with_capacity(self.entries.len() + 4);
        let mut new = Vec::new();
        for (number, entry) in listing()? {
            let ino = entry.ino();
            match self.entries.get(&number) {
                Some(&(seen, tid)) if seen == ino => {
                    listed.insert(number, (ino, tid));
                }
                _ => {
                    if let Some(task) = read_task(&entry.path()) {
                        listed.insert(number, (ino, task.tid));
                        new.push(task);
                    }
                }
            }
        }
        self.entries = listed;
        let alive = self.entries.values().map(|&(_, tid)| tid).collect();
        Ok((new, alive))
    }
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
        let tasks = PathBuf::from(TASKS);
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

/// The `stat` parsing, on made-up texts (no system call: Miri runs these),
/// and the census of the real threads (not under Miri).
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

    /// A census remembers what it read: the next reads only new threads,
    /// and forgets those that are gone.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn a_census_reads_each_thread_once() {
        let tid = || nix::unistd::gettid().as_raw();
        let mut seen = Seen::default();
        let (first, alive) = seen.new_tasks().unwrap();
        assert!(first.iter().any(|t| t.tid == tid()), "the first reads all");
        assert_eq!(first.len(), alive.len());
        let (again, alive_again) = seen.new_tasks().unwrap();
        assert!(
            again.iter().all(|t| t.tid != tid()),
            "this thread is read again"
        );
        assert!(alive_again.contains(&tid()));

        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (started, its_tid) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            started.send(tid()).unwrap();
            let _ = wait.recv();
        });
        let other_tid = its_tid.recv().unwrap();
        let (new, alive) = seen.new_tasks().unwrap();
        assert!(
            new.iter().any(|t| t.tid == other_tid),
            "the new thread is read"
        );
        assert!(alive.contains(&other_tid));
        let (again, _) = seen.new_tasks().unwrap();
        assert!(again.iter().all(|t| t.tid != other_tid), "read twice");
        drop(go);
        other.join().unwrap();
        // Joined, its entry may stay a moment while the kernel takes it down.
        let listed = |seen: &Seen| seen.entries.values().any(|&(_, t)| t == other_tid);
        let since = std::time::Instant::now();
        while listed(&seen) && since.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(1));
            let (_, alive) = seen.new_tasks().unwrap();
            assert_eq!(alive.contains(&other_tid), listed(&seen));
        }
        assert!(!listed(&seen), "gone, and still listed");
    }

    #[test]
    fn a_cut_or_garbled_text_is_none() {
        let text = stat_text("w", 0);
        assert_eq!(parse_stat(&text[..text.find("4242").unwrap()]), None);
        assert_eq!(parse_stat("77 (w S 1 77"), None);
        assert_eq!(parse_stat(&text.replace("4242", "soon")), None);
    }
}
