//! Per-thread facts the kernel reports through system calls rather than
//! `/proc`: whether two threads share an fs context or an fd table
//! (`kcmp`), securebits, the execution domain (`personality`), scheduling
//! (`sched_getattr`, `sched_setattr`, `ioprio_get`) and the timer slack;
//! and the CPU the thread runs on (`sched_getcpu`).

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

/// `struct sched_attr`'s `sched_flags` bit that keeps a thread's
/// scheduling from its children (`SCHED_FLAG_RESET_ON_FORK`).
pub(crate) const SCHED_RESET_ON_FORK: u64 = 0x01;

/// The fair-class scheduling of a thread as `sched_setattr(2)` takes it:
/// what [`set_fair_sched`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FairSched {
    /// `SCHED_OTHER` (0) or `SCHED_BATCH` (3).
    pub(crate) policy: u32,
    pub(crate) nice: i32,
    /// `sched_flags`; only [`SCHED_RESET_ON_FORK`] is written.
    pub(crate) flags: u64,
    /// `sched_runtime`: the time slice asked for, in nanoseconds (Linux
    /// 6.12 and later; 0 for the kernel's default). Older kernels ignore it.
    pub(crate) runtime: u64,
}

impl FairSched {
    /// The fair-class part of what [`sched_attr`] read, or `None` for a
    /// thread of another class (real-time, deadline, idle).
    pub(crate) fn of(attr: &[u64; 7]) -> Option<FairSched> {
        const SCHED_OTHER: u32 = 0;
        const SCHED_BATCH: u32 = 3;
        let [_size, policy] = halves(attr[0]);
        let [nice, _priority] = halves(attr[2]);
        (policy == SCHED_OTHER || policy == SCHED_BATCH).then_some(FairSched {
            policy,
            nice: nice as i32,
            flags: attr[1],
            runtime: attr[3],
        })
    }
}

/// Sets the calling thread's fair-class scheduling (`sched_setattr(2)`,
/// Linux 3.14).
pub(crate) fn set_fair_sched(sched: FairSched) -> Result<(), Errno> {
    // struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes), as words: size
    // and policy; flags; nice and priority (0 in the fair class); runtime;
    // deadline and period (unused here); the utilisation clamps (unused:
    // no SCHED_FLAG_UTIL_CLAMP_* flag is written).
    let mut attr = [0u64; 7];
    attr[0] = join(std::mem::size_of_val(&attr) as u32, sched.policy);
    attr[1] = sched.flags & SCHED_RESET_ON_FORK;
    attr[2] = join(sched.nice as u32, 0);
    attr[3] = sched.runtime;
    // SAFETY: sched_setattr(2) reads a struct sched_attr of the size its
    // first field gives, which `attr` is; pid 0 is the calling thread;
    // flags 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::c_long,
            attr.as_ptr(),
            0 as libc::c_long,
        )
    };
    NixErrno::result(rc).map(drop).map_err(Errno::from_nix)
}

/// The two 32-bit fields that share one word of `struct sched_attr`, in
/// the struct's order.
fn halves(word: u64) -> [u32; 2] {
    let b = word.to_ne_bytes();
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    ]
}

/// Two 32-bit fields, in the struct's order, as one word.
fn join(first: u32, second: u32) -> u64 {
    let (a, b) = (first.to_ne_bytes(), second.to_ne_bytes());
    u64::from_ne_bytes([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]])
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

/// The CPU the calling thread runs on (`sched_getcpu(3)`: glibc reads it
/// from the thread's rseq area, without a system call): a hint, since the
/// thread may move at any time. `None` where it cannot be told.
#[cfg_attr(loom, allow(dead_code))]
#[inline]
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: takes no argument and touches no memory of the caller's.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}
