//! What the running kernel offers, probed once per process.
//!
//! Decided from what the kernel does, never from its version string:
//! distribution kernels carry backports, and a kind can be configured out
//! (`CONFIG_TIME_NS=n`).

use std::path::Path;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::kind::{NsKind, NsKinds};
use crate::sys::fork_local::ForkLocal;

/// The kernel features nsguard depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    /// The kinds whose files exist under `/proc/self/ns` (for pid and time,
    /// the `*_for_children` file too, which a thread's state is read from).
    pub(crate) kinds: NsKinds,
    /// Whether `close_range(2)` exists (Linux 5.9).
    pub(crate) close_range: bool,
}

/// The running kernel's features, probed on first use (once per fork
/// generation: a `OnceLock` being filled by another thread at a fork would
/// make a forked child wait forever).
pub(crate) fn kernel() -> &'static Kernel {
    static KERNEL: ForkLocal<Kernel> = ForkLocal::new();
    let probed = KERNEL.get_or_try_make(|| {
        Ok::<_, std::convert::Infallible>(Kernel {
            kinds: probe_kinds(),
            close_range: probe_close_range(),
        })
    });
    let Ok(kernel) = probed;
    kernel
}

/// Whether the running kernel has namespaces of `kind`.
pub(crate) fn has(kind: NsKind) -> bool {
    kernel().kinds.contains(kind)
}

/// `Err(KindUnsupported)` for the first kind of `kinds` the running kernel
/// lacks.
pub(crate) fn check_supported(kinds: NsKinds) -> Result<()> {
    match kinds.difference(kernel().kinds).iter().next() {
        None => Ok(()),
        Some(kind) => Err(Error::KindUnsupported {
            kind,
            needs: needs(kind),
        }),
    }
}

impl NsKind {
    /// Whether the running kernel has namespaces of this kind: see
    /// [`NsKinds::supported`].
    ///
    /// ```
    /// use nsguard::NsKind;
    ///
    /// assert!(NsKind::Net.is_supported());
    /// if !NsKind::Time.is_supported() {
    ///     println!("no time namespaces: Linux before 5.6, or CONFIG_TIME_NS=n");
    /// }
    /// ```
    pub fn is_supported(self) -> bool {
        has(self)
    }
}

impl NsKinds {
    /// Every kind the running kernel has: what [`ALL`](Self::ALL) means in
    /// practice. Pass it where a call should take "every kind there is",
    /// such as [`NsSet::current`](crate::NsSet::current) or
    /// [`NsSet::of_pid`](crate::NsSet::of_pid), which refuse a kind the
    /// kernel lacks with [`Error::KindUnsupported`].
    ///
    /// The kernel is probed once per process, from what it does rather than
    /// its version (distribution kernels carry backports): a kind is there
    /// when `/proc/self/ns/<name>` exists, and for pid and time
    /// `pid_for_children`/`time_for_children` too. Time namespaces need
    /// Linux 5.6 built with `CONFIG_TIME_NS`; cgroup, 4.6; the others are in
    /// every kernel nsguard supports (4.18 and later), unless configured
    /// out. Without `/proc` nothing can be told, and every kind counts as
    /// there.
    ///
    /// ```
    /// use nsguard::{NsKind, NsKinds, NsSet};
    ///
    /// let kinds = NsKinds::supported();
    /// assert!(kinds.contains(NsKind::Net));
    /// let here = NsSet::current(kinds)?; // every namespace this thread is in
    /// assert_eq!(here.kinds(), kinds);
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn supported() -> NsKinds {
        kernel().kinds
    }
}

fn probe_kinds() -> NsKinds {
    let dir = Path::new("/proc/self/ns");
    // No /proc: nothing can be told. Every kind counts as present, and
    // opening one reports the missing file.
    if std::fs::symlink_metadata(dir).is_err() {
        return NsKinds::ALL;
    }
    let exists = |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok();
    NsKind::ALL
        .into_iter()
        .filter(|k| exists(k.proc_name()) && exists(k.thread_proc_name()))
        .collect()
}

fn probe_close_range() -> bool {
    // Closes nothing: no fd can be u32::MAX. A kernel without it answers
    // ENOSYS; any other answer means the call exists.
    // SAFETY: close_range(2) takes integers only.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, u32::MAX, u32::MAX, 0) };
    rc == 0 || Errno::last() != Errno::ENOSYS
}

/// What a kernel needs to have namespaces of `kind`, for errors and docs.
pub(crate) const fn needs(kind: NsKind) -> &'static str {
    match kind {
        NsKind::Time => "Linux 5.6 or later built with CONFIG_TIME_NS",
        NsKind::Cgroup => "Linux 4.6 or later built with CONFIG_CGROUPS",
        NsKind::Pid => "Linux 4.12 or later (for pid_for_children) built with CONFIG_PID_NS",
        NsKind::Net => "a kernel built with CONFIG_NET_NS",
        NsKind::User => "a kernel built with CONFIG_USER_NS",
        NsKind::Ipc => "a kernel built with CONFIG_IPC_NS",
        NsKind::Uts => "a kernel built with CONFIG_UTS_NS",
        NsKind::Mnt => "Linux 3.8 or later",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_agrees_with_proc() {
        let k = kernel();
        for kind in NsKind::ALL {
            let file = Path::new("/proc/thread-self/ns").join(kind.thread_proc_name());
            assert_eq!(k.kinds.contains(kind), file.exists(), "{kind}");
        }
        // Every kernel nsguard supports has these.
        let base = NsKind::Mnt | NsKind::Net | NsKind::Pid | NsKind::Ipc | NsKind::Uts;
        assert_eq!(k.kinds.intersection(base), base);
    }

    #[test]
    fn close_range_is_probed_from_the_call_itself() {
        // SAFETY: as in probe_close_range.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, u32::MAX, u32::MAX, 0) };
        assert_eq!(kernel().close_range, rc == 0);
    }
}
