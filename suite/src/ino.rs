//! Which namespace a thread, a task, a path or a `/proc` link is: its inode
//! number, read from `/proc` links and `stat`, never through nsguard.

use std::path::Path;

use nsguard::NsKind;

/// The inode number in a `/proc/.../ns/*` link target like `net:[4026531833]`.
///
/// # Panics
///
/// If there is no such link.
pub fn link_ino(link: impl AsRef<Path>) -> u64 {
    let link = link.as_ref();
    try_link_ino(link).unwrap_or_else(|| panic!("no namespace link at {link:?}"))
}

/// [`link_ino`], or `None` if the link is gone (its thread exited).
pub fn try_link_ino(link: impl AsRef<Path>) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let target = target.to_string_lossy();
    let start = target.find('[')? + 1;
    target.get(start..target.len() - 1)?.parse().ok()
}

/// The file under `/proc/<task>/ns` that shows what `setns` of `kind`
/// changes on a thread: `pid_for_children` and `time_for_children` for pid
/// and time, else the kind's own.
pub(crate) fn thread_file(kind: NsKind) -> &'static str {
    match kind {
        NsKind::Pid => "pid_for_children",
        NsKind::Time => "time_for_children",
        other => other.proc_name(),
    }
}

/// The namespace of `kind` the calling thread is in, read from its link.
pub fn thread_ino(kind: NsKind) -> u64 {
    link_ino(format!("/proc/thread-self/ns/{}", thread_file(kind)))
}

/// The namespace of `kind` thread `tid` of this process is in (`tid` as
/// the `/proc` mounted numbers it: `gettid()` unless the process is in
/// another pid namespace than that `/proc`).
pub fn task_ino(tid: i32, kind: NsKind) -> u64 {
    link_ino(format!("/proc/self/task/{tid}/ns/{}", thread_file(kind)))
}

/// The namespace of `kind` the main thread of this process is in.
pub fn main_thread_ino(kind: NsKind) -> u64 {
    link_ino(format!("/proc/self/ns/{}", thread_file(kind)))
}

/// The inode of the namespace file at `path` (following links).
///
/// # Panics
///
/// If `path` cannot be `stat`ed.
pub fn path_ino(path: impl AsRef<Path>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path.as_ref())
        .expect("stat namespace file")
        .ino()
}
