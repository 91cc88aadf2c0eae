//! Per-thread facts the kernel reports through system calls rather than
//! `/proc`: whether two threads share an fs context or an fd table
//! (`kcmp`), securebits, the execution domain (`personality`), scheduling
//! (`sched_getattr`, `ioprio_get`) and the timer slack.

use nix::errno::Errno as NixErrno;

use crate::errno::Errno;

/// What two threads are compared on by [`kcmp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shared {
    /// The fd table (`KCMP_FILES`).
    Files = 2,
    /// Root, cwd and umask (`KCMP_FS`).
    Fs = 3,
}

/// Whether threads `a` and `b` (thread ids of the caller's pid namespace)
/// share `what`: `kcmp(2)` (Linux 3.5, `CONFIG_KCMP`).
pub(crate) fn kcmp(a: i32, b: i32, what: Shared) -> Result<bool, Errno> {
    // SAFETY: kcmp(2) takes integers only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(a),
            libc::c_long::from(b),
            what as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    NixErrno::result(rc)
        .map(|r| r == 0)
        .map_err(Errno::from_nix)
}

/// The calling thread's securebits (`PR_GET_SECUREBITS`).
pub(crate) fn securebits() -> Result<i32, Errno> {
    // SAFETY: PR_GET_SECUREBITS takes no pointer argument.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    NixErrno::result(rc).map_err(Errno::from_nix)
}

/// The calling thread's execution domain (`personality(0xffffffff)`, which
/// reads it without changing it): `PER_LINUX32`, `UNAME26`,
/// `READ_IMPLIES_EXEC`, `ADDR_NO_RANDOMIZE`…
pub(crate) fn personality() -> Result<u32, Errno> {
    // SAFETY: personality(2) takes an integer; 0xffffffff only queries.
    let rc = unsafe { libc::personality(0xffff_ffff) };
    NixErrno::result(rc)
        .map(|p| p as u32)
        .map_err(Errno::from_nix)
}

/// The calling thread's timer slack in nanoseconds (`PR_GET_TIMERSLACK`).
pub(crate) fn timer_slack() -> Result<i64, Errno> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer argument.
    let rc = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    NixErrno::result(rc).map(i64::from).map_err(Errno::from_nix)
}

/// The calling thread's scheduling, as `sched_getattr(2)` reports it
/// (Linux 3.14): policy, flags, nice, real-time priority, deadline
/// parameters and utilisation clamps, as raw words.
pub(crate) fn sched_attr() -> Result<[u64; 7], Errno> {
    // struct sched_attr (SCHED_ATTR_SIZE_VER1, 56 bytes): size and policy
    // (u32 each), flags (u64), nice and priority (i32, u32), runtime,
    // deadline, period (u64 each), util_min and util_max (u32 each).
    let mut attr = [0u64; 7];
    let size = std::mem::size_of_val(&attr);
    // SAFETY: sched_getattr(2) writes at most `size` bytes (the last
    // argument is flags, 0) into `attr`, which is that long; pid 0 is the
    // calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0 as libc::c_long,
            attr.as_mut_ptr(),
            size as libc::c_long,
            0 as libc::c_long,
        )
    };
    NixErrno::result(rc).map_err(Errno::from_nix)?;
    // The first word's low half is the size the kernel wrote: the same
    // from call to call; leave it in.
    Ok(attr)
}

/// The calling thread's I/O priority (`ioprio_get(IOPRIO_WHO_PROCESS, 0)`,
/// which names the calling thread).
pub(crate) fn ioprio() -> Result<i32, Errno> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get(2) takes integers only.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long) };
    NixErrno::result(rc)
        .map(|p| i32::try_from(p).unwrap_or(-1))
        .map_err(Errno::from_nix)
}
