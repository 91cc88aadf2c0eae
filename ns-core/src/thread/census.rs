//! Every thread of the process and where it is, read from
//! `/proc/self/task`: for the audit of threads away from home, and for the
//! executor's report of threads a body left inside.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;
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
/// [`Error::Io`] if `/proc/self/task` cannot be listed.
pub(crate) fn tasks() -> Result<Vec<Task>> {
    Ok(listing()?
        .into_iter()
        .filter_map(|entry| read_task(&entry.path()))
        .collect())
}

/// An entry of `/proc/self/task`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The number it is named by: the thread's id in the pid namespace of
    /// this `/proc`.
    number: u32,
    /// Its inode number.
    ino: u64,
}

impl Entry {
    /// The thread's directory.
    fn path(self) -> PathBuf {
        Path::new(TASKS).join(self.number.to_string())
    }
}

/// How many times [`listing`] lists `/proc/self/task` before it settles
/// for the union of what it listed.
const LISTING_ATTEMPTS: usize = 8;

/// The entries of `/proc/self/task`: every thread there when the listing
/// began and still there when it ended, and any that began or ended
/// meanwhile.
///
/// The kernel lists the threads in the order they began, following its
/// list of them. A thread that ends as the listing reaches it ends the
/// `getdents64` call early. The next call then starts after as many
/// threads as were listed, counted again from the first: if a thread
/// listed earlier has ended meanwhile, it steps over one that is there all
/// along (a `readdir` loop missed such a thread about once in 3 000
/// listings while 32 threads before it ended). So a listing here is one
/// call on a fresh fd, with room for every thread: it skips none, but may
/// stop early. It is taken if it lists as many threads as the directory
/// counted just before the call. A call that stopped before a thread that
/// was there all along lists only threads that came before it (a thread
/// that begins comes last), so fewer. One in which a thread ended also
/// lists fewer, and is made again. After [`LISTING_ATTEMPTS`] calls, all
/// that they listed.
///
/// # Errors
///
/// [`Error::Io`] if `/proc/self/task` cannot be listed.
fn listing() -> Result<Vec<Entry>> {
    let mut buf: Vec<u64> = Vec::new();
    settle(LISTING_ATTEMPTS, || one_call(0, &mut buf))
}

/// The first whole one of up to `attempts` calls, as it is; else the
/// union of what they all listed, by number, where a later call's entry
/// of a number (a later thread given the id) replaces an earlier one's.
fn settle(attempts: usize, mut call: impl FnMut() -> Result<Call>) -> Result<Vec<Entry>> {
    let mut union = BTreeMap::new();
    for _ in 0..attempts {
        let call = call()?;
        if call.whole {
            return Ok(call.entries);
        }
        union.extend(call.entries.into_iter().map(|e| (e.number, e.ino)));
    }
    Ok(union
        .into_iter()
        .map(|(number, ino)| Entry { number, ino })
        .collect())
}

/// What one `getdents64` call listed of `/proc/self/task`.
struct Call {
    /// The entries, in the kernel's order, from where the call began.
    entries: Vec<Entry>,
    /// Whether it lists every thread there all along from where it began
    /// (see [`listing`]).
    whole: bool,
}

/// One `getdents64` call on a fresh fd of `/proc/self/task`, after the
/// first `skip` threads (the kernel counts them from the first), with room
/// for every thread; `buf` grows when the room was short.
fn one_call(skip: usize, buf: &mut Vec<u64>) -> Result<Call> {
    let dir = Path::new(TASKS);
    let io = |op, errno| Error::Io {
        op,
        kind: None,
        path: Some(dir.to_path_buf()),
        errno,
    };
    let fd = sys::open_listing(dir).map_err(|e| io("listing the threads in", e))?;
    let counted = sys::link_count(fd.as_fd())
        .map_err(|e| io("counting the threads in", e))?
        .saturating_sub(2);
    // The threads from where the call begins that were there before it: at
    // most as many as counted, less those it begins after (all there then:
    // a thread that begins comes last).
    let expected = counted.saturating_sub(u64::try_from(skip).unwrap_or(u64::MAX));
    // Room for the dots, those threads, and as many again that begin
    // meanwhile; 8-byte words.
    let room = usize::try_from(expected)
        .unwrap_or(usize::MAX / 2)
        .saturating_add(2)
        .saturating_mul(2 * sys::NUMBER_RECORD / 8);
    if buf.len() < room {
        buf.resize(room, 0);
    }
    if skip > 0 {
        // Past the dots, then `skip` threads.
        sys::seek_entries(fd.as_fd(), skip.saturating_add(2))
            .map_err(|e| io("listing the threads in", e))?;
    }
    let records = sys::getdents(fd.as_fd(), buf).map_err(|e| io("listing the threads in", e))?;
    let written = records.len();
    let entries: Vec<Entry> = records
        .filter_map(|record| {
            let record = record.ok()?;
            let number = std::str::from_utf8(record.name).ok()?.parse().ok()?;
            Some(Entry {
                number,
                ino: record.ino,
            })
        })
        .collect();
    let full = written + sys::NUMBER_RECORD > std::mem::size_of_val(buf.as_slice());
    if full {
        // Perhaps more threads than room: more room next time.
        let more = buf.len() * 2;
        buf.resize(more, 0);
    }
    let whole = !full && u64::try_from(entries.len()).unwrap_or(u64::MAX) >= expected;
    Ok(Call { entries, whole })
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
///
/// After a thread start, a census lists only the end of `/proc/self/task`
/// (a thread that begins comes last): the kernel counts its way past all
/// but the last [`TAIL`] threads the census knows, without listing them,
/// and the call is taken if it begins at a thread the census knows (it
/// did not step past a new one: more than [`TAIL`] known threads before
/// it ended) and lists every thread there all along from there (see
/// [`listing`]). Else, and every [`FULL_EVERY`] censuses, to forget the
/// gone, it lists them all.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    /// Entry name → its inode number, and the thread's id as `gettid`
    /// returns it.
    entries: HashMap<u32, (u64, i32)>,
    /// The names of `entries` in the kernel's order, the order the threads
    /// began.
    order: Vec<u32>,
    /// Censuses since the last that listed every thread.
    since_full: u32,
}

/// How many of the last threads a census knows it lists again, so that
/// fewer than that may have ended before them.
const TAIL: usize = 32;

/// Every how many censuses one lists every thread, forgetting those gone.
const FULL_EVERY: u32 = 64;

impl Seen {
    /// Every thread there now, listed as seen without being read: for a
    /// worker before its first call, since no thread there yet can be one
    /// that its bodies started. Empty where `/proc/self/task` does not
    /// number threads as `gettid` does (the id of a thread is then only
    /// known by reading it), or cannot be listed.
    pub(crate) fn of_threads_there() -> Seen {
        if Departures::here().is_none() {
            return Seen::default();
        }
        let Ok(entries) = listing() else {
            return Seen::default();
        };
        let mut seen = Seen::default();
        for Entry { number, ino } in entries {
            if let Ok(tid) = i32::try_from(number) {
                seen.entries.insert(number, (ino, tid));
                seen.order.push(number);
            }
        }
        seen
    }

    /// The end of `/proc/self/task`, from a thread this census knows, and
    /// where that thread is in `order`; `None` where the whole must be
    /// listed (see [`Seen`]).
    fn tail(&self) -> Option<(usize, Vec<Entry>)> {
        let skip = self.order.len().checked_sub(TAIL).filter(|&n| n > 0)?;
        let call = one_call(skip, &mut Vec::new()).ok()?;
        let first = call.entries.first().filter(|_| call.whole)?;
        let known = self.entries.get(&first.number)?.0 == first.ino;
        let at = self.order.iter().rposition(|&n| n == first.number)?;
        known.then_some((at, call.entries))
    }

    /// The threads that no earlier call saw, read in full, and the ids of
    /// every thread it knows (those before the tail were not listed again,
    /// and some may have gone: a census that lists all forgets them).
    /// Threads that exit while they are read, or are exiting already, are
    /// left out (and not remembered).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `/proc/self/task` cannot be listed.
    pub(crate) fn new_tasks(&mut self) -> Result<(Vec<Task>, BTreeSet<i32>)> {
        self.since_full += 1;
        let tail = (self.since_full < FULL_EVERY)
            .then(|| self.tail())
            .flatten();
        // The known threads before the tail stay known, unlisted.
        let (kept, listed) = match tail {
            Some(tail) => tail,
            None => {
                self.since_full = 0;
                (0, listing()?)
            }
        };
        let mut entries = HashMap::with_capacity(self.entries.len() + 4);
        let mut order = Vec::with_capacity(self.order.len() + 4);
        // A kept entry whose name the tail lists again was a thread gone
        // since, whose id a later thread has: the tail's is the one there.
        let relisted: HashSet<u32> = listed.iter().map(|e| e.number).collect();
        for &number in self.order[..kept].iter().filter(|n| !relisted.contains(n)) {
            if let Some(&known) = self.entries.get(&number) {
                entries.insert(number, known);
                order.push(number);
            }
        }
        let mut new = Vec::new();
        for entry in listed {
            let Entry { number, ino } = entry;
            match self.entries.get(&number) {
                Some(&(seen, tid)) if seen == ino => {
                    entries.insert(number, (ino, tid));
                }
                _ => {
                    let Some(task) = read_task(&entry.path()) else {
                        continue;
                    };
                    entries.insert(number, (ino, task.tid));
                    new.push(task);
                }
            }
            order.push(number);
        }
        self.entries = entries;
        self.order = order;
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

    fn entries(list: &[(u32, u64)]) -> Vec<Entry> {
        list.iter()
            .map(|&(number, ino)| Entry { number, ino })
            .collect()
    }

    #[test]
    fn a_whole_listing_is_taken_as_it_is_and_ends_the_attempts() {
        let mut calls = vec![
            (false, entries(&[(5, 50)])),
            (true, entries(&[(9, 90), (5, 50), (7, 70)])),
            (true, entries(&[(1, 10)])),
        ]
        .into_iter();
        let mut made = 0;
        let listed = settle(LISTING_ATTEMPTS, || {
            made += 1;
            let (whole, entries) = calls.next().expect("no call after a whole one");
            Ok(Call { entries, whole })
        });
        assert_eq!(
            listed.expect("listed"),
            entries(&[(9, 90), (5, 50), (7, 70)])
        );
        assert_eq!(made, 2);
    }

    #[test]
    fn listings_that_all_stop_short_give_every_thread_any_of_them_listed() {
        // Each call stops before a different thread; thread 4's id is
        // given to a later thread (another inode) by the last calls.
        let mut made: usize = 0;
        let listed = settle(LISTING_ATTEMPTS, || {
            made += 1;
            let mut list = vec![(1, 10), (2, 20), (3, 30)];
            list.retain(|&(number, _)| number as usize != made % 3 + 1);
            list.push((4, if made > 6 { 41 } else { 40 }));
            Ok(Call {
                entries: entries(&list),
                whole: false,
            })
        });
        assert_eq!(made, LISTING_ATTEMPTS);
        assert_eq!(
            listed.expect("listed"),
            entries(&[(1, 10), (2, 20), (3, 30), (4, 41)])
        );
    }

    #[test]
    fn a_call_that_fails_fails_the_listing() {
        let mut made = 0;
        let listed = settle(LISTING_ATTEMPTS, || {
            made += 1;
            if made == 2 {
                return Err(Error::Io {
                    op: "listing the threads in",
                    kind: None,
                    path: Some(PathBuf::from(TASKS)),
                    errno: crate::errno::Errno::from_raw(libc::EMFILE),
                });
            }
            Ok(Call {
                entries: entries(&[(1, 10)]),
                whole: false,
            })
        });
        assert!(matches!(listed, Err(Error::Io { .. })), "{listed:?}");
        assert_eq!(made, 2);
    }

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

    /// A census that begins with the threads there reads none of them,
    /// only a thread begun after.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn a_census_that_begins_with_the_threads_there_reads_only_later_ones() {
        let tid = || nix::unistd::gettid().as_raw();
        // A thread that waits until its sender is dropped, and its id.
        let waiting = || {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let (its_tid, tid_of) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                its_tid.send(tid()).unwrap();
                let _ = wait.recv();
            });
            (release, thread, tid_of.recv().unwrap())
        };
        let before = waiting();
        let mut seen = Seen::of_threads_there();
        let after = waiting();
        // Other tests' threads may begin meanwhile too.
        let (new, alive) = seen.new_tasks().unwrap();
        let read: Vec<i32> = new.iter().map(|t| t.tid).collect();
        assert!(read.contains(&after.2), "{read:?}");
        assert!(!read.contains(&before.2), "{read:?}");
        assert!(!read.contains(&tid()), "{read:?}");
        assert!(alive.contains(&tid()) && alive.contains(&before.2));
        for (release, thread, _) in [before, after] {
            drop(release);
            thread.join().unwrap();
        }
    }

    /// A census that lists only the end of `/proc/self/task` still reads
    /// a new thread while threads it knows, begun before, end: more of them
    /// than it lists again, so that the kernel's count of threads to step
    /// past sometimes lands beyond the new one.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn a_census_reads_a_new_thread_while_threads_it_knows_end() {
        const ENDING: usize = TAIL + 16;
        let (censuses, missed) = misses_while_threads_end(
            200,
            ENDING,
            || {
                let known = Seen::of_threads_there();
                assert!(known.order.len() > ENDING);
                known
            },
            |known: &Seen, later: i32| {
                let (new, _) = known.clone().new_tasks().unwrap();
                new.iter().any(|t| t.tid == later)
            },
        );
        assert_eq!(
            missed, 0,
            "{missed} of {censuses} censuses did not read the new thread"
        );
    }

    /// A thread the census knew, gone, whose id a new thread at the end
    /// has: the census keeps the new one only, once.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn a_later_thread_with_a_known_id_replaces_the_known_one() {
        let waiting = || {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let (its_tid, tid) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                its_tid.send(nix::unistd::gettid().as_raw()).unwrap();
                let _ = wait.recv();
            });
            (release, thread, tid.recv().unwrap())
        };
        // Enough threads that the census lists only the end.
        let many: Vec<_> = (0..TAIL + 8).map(|_| waiting()).collect();
        let mut seen = Seen::of_threads_there();
        let later = waiting();
        let number = u32::try_from(later.2).unwrap();
        // As if a thread with the later one's id had been known, first.
        seen.order.insert(0, number);
        seen.entries.insert(number, (u64::MAX, later.2));
        let (new, _) = seen.new_tasks().unwrap();
        assert!(new.iter().any(|t| t.tid == later.2));
        let times = seen.order.iter().filter(|&&n| n == number).count();
        assert_eq!(times, 1, "{:?}", seen.order);
        assert_ne!(seen.entries[&number].0, u64::MAX);
        for (release, thread, _) in many.into_iter().chain([later]) {
            drop(release);
            thread.join().unwrap();
        }
    }

    /// A thread there all along is in every listing while threads that
    /// began before it end: the kernel's next `getdents64` call after one
    /// that ended early, counting again from the first thread, would step
    /// over it.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn a_listing_misses_no_thread_while_threads_before_it_end() {
        let (listings, missed) = misses_while_threads_end(
            300,
            32,
            || (),
            |_: &(), later: i32| {
                let number = u32::try_from(later).unwrap();
                listing().unwrap().iter().any(|e| e.number == number)
            },
        );
        assert_eq!(
            missed, 0,
            "{missed} of {listings} listings missed a thread there all along"
        );
    }

    /// `rounds` times: `ending` threads begin, then `before_later` makes
    /// what `probe` looks with, then one thread begins after them (so after
    /// them in the kernel's list). While the `ending` threads end together,
    /// another thread calls `probe` with the later thread's id, again and
    /// again, until they have all been joined. Returns how many probes were
    /// made and how many returned `false`.
    fn misses_while_threads_end<S: Send + 'static>(
        rounds: usize,
        ending: usize,
        before_later: impl Fn() -> S,
        probe: impl Fn(&S, i32) -> bool + Send + Copy + 'static,
    ) -> (usize, usize) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Arc, Barrier};
        let (mut probes, mut missed) = (0, 0);
        for _ in 0..rounds {
            let go = Arc::new(Barrier::new(ending + 1));
            let ending: Vec<_> = (0..ending)
                .map(|_| {
                    let go = Arc::clone(&go);
                    std::thread::spawn(move || {
                        go.wait();
                    })
                })
                .collect();
            let state = before_later();
            let (release, wait) = mpsc::channel::<()>();
            let (its_tid, tid) = mpsc::channel();
            let later = std::thread::spawn(move || {
                its_tid.send(nix::unistd::gettid().as_raw()).unwrap();
                let _ = wait.recv();
            });
            let later_tid = tid.recv().unwrap();
            let done = Arc::new(AtomicBool::new(false));
            let prober = {
                let done = Arc::clone(&done);
                std::thread::spawn(move || {
                    let (mut probes, mut missed) = (0, 0);
                    loop {
                        let last = done.load(Ordering::Acquire);
                        probes += 1;
                        if !probe(&state, later_tid) {
                            missed += 1;
                        }
                        if last {
                            return (probes, missed);
                        }
                    }
                })
            };
            go.wait();
            for thread in ending {
                thread.join().unwrap();
            }
            done.store(true, Ordering::Release);
            let (p, m) = prober.join().unwrap();
            probes += p;
            missed += m;
            drop(release);
            later.join().unwrap();
        }
        (probes, missed)
    }

    #[test]
    fn a_cut_or_garbled_text_is_none() {
        let text = stat_text("w", 0);
        assert_eq!(parse_stat(&text[..text.find("4242").unwrap()]), None);
        assert_eq!(parse_stat("77 (w S 1 77"), None);
        assert_eq!(parse_stat(&text.replace("4242", "soon")), None);
    }
}
