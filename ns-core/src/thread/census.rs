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

/// One thread; `None` if it exited meanwhile, or is exiting. A thread that
/// has been joined may still be on its way out of the kernel, with its
/// entry and namespace links readable for a moment after `join` returned:
/// it is exiting by then (the kernel sets `PF_EXITING` before it releases
/// the joiner).
fn read_task(dir: &Path) -> Option<Task> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // After the name, which may hold spaces and parentheses: the state,
    // then ppid, pgrp, session, tty_nr, tpgid, flags.
    let (_, after_name) = stat.rsplit_once(')')?;
    let flags: u64 = after_name.split_whitespace().nth(6)?.parse().ok()?;
    if flags & PF_EXITING != 0 {
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
        name,
        location,
    })
}
