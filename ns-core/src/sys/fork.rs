//! Forked single-threaded children: a plan of what the child does (enter
//! namespaces, unshare, take credentials, change directory) carried out
//! with async-signal-safe system calls only, for helper processes that
//! create namespaces and for `pre_exec` hooks of spawned commands.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno as NixErrno;
use nix::fcntl::OFlag;

use crate::errno::Errno;
use crate::sys::close_fds::{close_inherited, FdsToClose};

/// A forked single-threaded child that has entered some namespaces and
/// created others, and waits until [`ForkedHelper::release`].
pub(crate) struct ForkedHelper {
    pid: nix::unistd::Pid,
    /// Its pid in the numbering of the `/proc` mounted.
    proc_pid: Option<u32>,
    go: Option<OwnedFd>,
}

/// What a forked child does before it waits (a creation helper) or execs
/// (a spawned process), prepared in the parent: a child forked from a
/// multithreaded process may only make async-signal-safe system calls, so
/// [`ChildPlan::apply`] allocates nothing and takes no lock.
pub(crate) struct ChildPlan {
    /// `(fd, CLONE_NEW*)` to `setns` into, in order.
    pub(crate) setns: Vec<(RawFd, i32)>,
    /// Flags for one `unshare(2)` after that (0: none).
    pub(crate) unshare: i32,
    /// Whether to make every mount private (`MS_REC | MS_PRIVATE` on `/`)
    /// after unsharing, so that nothing mounted later propagates out.
    pub(crate) private_mounts: bool,
    /// Ids to take after entering the namespaces (so that the privilege to
    /// enter them is still there, and ids of a new user namespace apply).
    pub(crate) creds: Option<ChildCreds>,
    /// A directory to change to at the end (resolved in the namespaces).
    pub(crate) chdir: Option<std::ffi::CString>,
}

/// The user, group and supplementary groups a spawned child takes.
pub(crate) struct ChildCreds {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
}

/// The step of a [`ChildPlan`] that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildStep {
    /// Before the plan: the pipe, the fork, or the child died unheard.
    Start,
    /// Tying the child's life to its parent's (`PR_SET_PDEATHSIG`), or the
    /// parent was gone before that.
    ParentDeath,
    /// Closing the fds the child inherited.
    CloseFds,
    /// `setns` into the plan's namespace at this index.
    Setns(usize),
    Unshare,
    PrivateMounts,
    Creds,
    Chdir,
}

impl ChildStep {
    /// The step, for error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ChildStep::Start => "starting a helper process",
            ChildStep::ParentDeath => {
                "tying the helper process to its parent (PR_SET_PDEATHSIG; the parent may have \
                 exited)"
            }
            ChildStep::CloseFds => {
                "closing the fds the helper process inherited (close_range, then /proc/self/fd)"
            }
            ChildStep::Setns(_) => "setns in the child",
            ChildStep::Unshare => "unshare in the child",
            ChildStep::PrivateMounts => "making the new mount namespace private",
            ChildStep::Creds => "setting the credentials (setgroups, setresgid, setresuid)",
            ChildStep::Chdir => "changing to the working directory inside the mount namespace",
        }
    }
}

/// A failed step of a [`ChildPlan`], with its errno; crosses a pipe from the
/// child to the parent in a report of [`ChildFailure::LEN`] bytes (the
/// step, its index, the errno, and on success the child's pid as `/proc`
/// numbers it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildFailure {
    pub(crate) step: ChildStep,
    pub(crate) errno: Errno,
}

impl ChildFailure {
    const LEN: usize = 13;

    fn start(errno: Errno) -> ChildFailure {
        ChildFailure {
            step: ChildStep::Start,
            errno,
        }
    }

    /// Writes the outcome of a plan to `fd` (a zero tag: it succeeded),
    /// with the child's pid in the numbering of the `/proc` mounted (0 if
    /// unknown). Async-signal-safe.
    fn report(outcome: Result<(), ChildFailure>, proc_pid: u32, fd: RawFd) {
        let mut msg = [0u8; Self::LEN];
        msg[9..13].copy_from_slice(&proc_pid.to_le_bytes());
        if let Err(failure) = outcome {
            let (tag, index) = match failure.step {
                ChildStep::Start => (1, 0),
                ChildStep::Setns(i) => (2, i as u32),
                ChildStep::Unshare => (3, 0),
                ChildStep::PrivateMounts => (4, 0),
                ChildStep::Chdir => (5, 0),
                ChildStep::ParentDeath => (6, 0),
                ChildStep::CloseFds => (7, 0),
                ChildStep::Creds => (8, 0),
            };
            msg[0] = tag;
            msg[1..5].copy_from_slice(&index.to_le_bytes());
            msg[5..9].copy_from_slice(&failure.errno.raw().to_le_bytes());
        }
        // SAFETY: write(2) from a valid buffer of that length.
        unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
    }

    /// Reads an outcome written by [`report`](Self::report): `None` when
    /// nothing (complete) was written, else the plan's result.
    pub(crate) fn receive(fd: BorrowedFd<'_>) -> Option<Result<(), ChildFailure>> {
        Self::receive_report(fd).map(|(outcome, _)| outcome)
    }

    /// [`receive`](Self::receive), with the child's pid as `/proc` numbers
    /// it (`None` if the child could not tell).
    fn receive_report(fd: BorrowedFd<'_>) -> Option<(Result<(), ChildFailure>, Option<u32>)> {
        let mut msg = [0u8; Self::LEN];
        if read_full(fd, &mut msg) != Self::LEN {
            return None;
        }
        let proc_pid = u32::from_le_bytes([msg[9], msg[10], msg[11], msg[12]]);
        let proc_pid = (proc_pid != 0).then_some(proc_pid);
        let index = u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize;
        let errno = Errno::from_raw(i32::from_le_bytes([msg[5], msg[6], msg[7], msg[8]]));
        let step = match msg[0] {
            0 => return Some((Ok(()), proc_pid)),
            2 => ChildStep::Setns(index),
            3 => ChildStep::Unshare,
            4 => ChildStep::PrivateMounts,
            5 => ChildStep::Chdir,
            6 => ChildStep::ParentDeath,
            7 => ChildStep::CloseFds,
            8 => ChildStep::Creds,
            _ => ChildStep::Start,
        };
        Some((Err(ChildFailure { step, errno }), proc_pid))
    }

    /// Reports this failure on `fd` and returns it as the `io::Error`
    /// `pre_exec` expects (which does not allocate). Async-signal-safe.
    pub(crate) fn send(self, fd: RawFd) -> std::io::Error {
        Self::report(Err(self), 0, fd);
        std::io::Error::from_raw_os_error(self.errno.raw())
    }
}

impl ChildPlan {
    /// Carries out the plan on the calling thread. Meant for a forked child:
    /// async-signal-safe system calls only, nothing allocated.
    pub(crate) fn apply(&self) -> Result<(), ChildFailure> {
        let failed = |step| ChildFailure {
            step,
            errno: Errno::last(),
        };
        for (i, &(fd, flag)) in self.setns.iter().enumerate() {
            // SAFETY: setns(2) on a descriptor inherited from the parent.
            if unsafe { libc::setns(fd, flag) } != 0 {
                return Err(failed(ChildStep::Setns(i)));
            }
        }
        // SAFETY: unshare(2) takes flags only.
        if self.unshare != 0 && unsafe { libc::unshare(self.unshare) } != 0 {
            return Err(failed(ChildStep::Unshare));
        }
        if self.private_mounts {
            let flags = (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong;
            // SAFETY: mount(2) with a NUL-terminated target and null
            // pointers for the optional arguments.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(failed(ChildStep::PrivateMounts));
            }
        }
        if let Some(creds) = &self.creds {
            // SAFETY: setgroups(2) reads `len` gids from a live buffer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_setgroups,
                    creds.groups.len(),
                    creds.groups.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(failed(ChildStep::Creds));
            }
            let (uid, gid) = (creds.uid, creds.gid);
            // SAFETY: setresgid(2) takes integers only. Raw system calls
            // change the calling thread only: the child has no other.
            if unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) } != 0 {
                return Err(failed(ChildStep::Creds));
            }
            // SAFETY: as above, for setresuid(2).
            if unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) } != 0 {
                return Err(failed(ChildStep::Creds));
            }
        }
        if let Some(dir) = &self.chdir {
            // SAFETY: chdir(2) with a NUL-terminated path.
            if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                return Err(failed(ChildStep::Chdir));
            }
        }
        Ok(())
    }
}

impl ForkedHelper {
    /// Forks the child, runs `plan` in it, and waits for its report.
    pub(crate) fn spawn(plan: &ChildPlan) -> Result<ForkedHelper, ChildFailure> {
        use nix::unistd::{pipe2, ForkResult};
        let start = |errno| ChildFailure::start(Errno::from_nix(errno));
        let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(start)?;
        let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).map_err(start)?;
        // Every fd the child needs; it closes all others, which other
        // threads' helpers may have left in it (close-on-exec does not help
        // a child that never execs).
        let mut keep: Vec<i32> = plan.setns.iter().map(|(fd, _)| *fd).collect();
        keep.extend([ready_w.as_raw_fd(), go_r.as_raw_fd()]);
        keep.sort_unstable();
        keep.dedup();
        // Everything the child needs to know, found out before the fork.
        let inherit = Inherited {
            fds: FdsToClose::all_but(&keep),
            parent: nix::unistd::getpid().as_raw(),
        };
        // SAFETY: the child runs `child_main` only, which makes raw,
        // async-signal-safe system calls (prctl, getppid, close_range or
        // open/getdents64/close, the plan's setns, unshare, mount, then
        // write, read, _exit) on data prepared before the fork, never
        // allocates, takes no lock and never returns: safe after fork() in
        // a multithreaded process.
        match unsafe { nix::unistd::fork() }.map_err(start)? {
            ForkResult::Child => child_main(plan, &inherit, ready_w.as_raw_fd(), go_r.as_raw_fd()),
            ForkResult::Parent { child } => {
                drop(ready_w);
                drop(go_r);
                let mut helper = ForkedHelper {
                    pid: child,
                    proc_pid: None,
                    go: Some(go_w),
                };
                let failure = match ChildFailure::receive_report(ready_r.as_fd()) {
                    Some((Ok(()), proc_pid)) => {
                        helper.proc_pid = proc_pid;
                        return Ok(helper);
                    }
                    Some((Err(failure), _)) => failure,
                    None => ChildFailure::start(Errno::ECHILD),
                };
                // The child has exited (or died): reap it without writing
                // into a pipe nobody reads.
                drop(helper.go.take());
                helper.reap();
                Err(failure)
            }
        }
    }

    /// The child's pid as the `/proc` mounted numbers it, which differs
    /// from the one `fork(2)` returned when that `/proc` belongs to another
    /// pid namespace; `None` if `/proc` does not show the child. Build
    /// `/proc/<pid>` paths from this one only.
    pub(crate) fn proc_pid(&self) -> Option<u32> {
        self.proc_pid
    }

    /// Lets the child exit, and reaps it.
    pub(crate) fn release(&mut self) {
        if let Some(go) = self.go.take() {
            // An explicit byte: another thread's helper may hold a copy of
            // this pipe's write end for a moment, so EOF may come late.
            let _ = nix::unistd::write(&go, &[1]);
            drop(go);
            self.reap();
        }
    }

    fn reap(&self) {
        while let Err(NixErrno::EINTR) = nix::sys::wait::waitpid(self.pid, None) {}
    }
}

impl Drop for ForkedHelper {
    fn drop(&mut self) {
        self.release();
    }
}

fn read_full(fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::read(fd, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(NixErrno::EINTR) => continue,
            Err(_) => break,
        }
    }
    done
}

/// What a forked helper learns from its parent before the fork.
struct Inherited<'a> {
    /// The fds it closes.
    fds: FdsToClose<'a>,
    /// The parent's pid, to tell whether it died before the child could
    /// tie its life to it.
    parent: i32,
}

/// The forked child: async-signal-safe system calls only.
fn child_main(plan: &ChildPlan, inherit: &Inherited<'_>, ready: i32, go: i32) -> ! {
    let outcome = die_with_parent(inherit.parent)
        .and_then(|()| {
            close_inherited(&inherit.fds).map_err(|errno| ChildFailure {
                step: ChildStep::CloseFds,
                errno,
            })
        })
        .and_then(|()| plan.apply());
    let failed = outcome.is_err();
    ChildFailure::report(outcome, own_proc_pid(), ready);
    if !failed {
        let mut byte = 0u8;
        // SAFETY: read(2) into a one-byte buffer; returns when the parent
        // writes its byte or closes its end, or never if the parent dies
        // while another process holds a copy of that end: then the
        // parent-death signal ends the child.
        unsafe { libc::read(go, (&mut byte as *mut u8).cast(), 1) };
    }
    // SAFETY: _exit(2) ends the child without running any Rust code.
    unsafe { libc::_exit(i32::from(failed)) }
}

/// The calling process's pid in the numbering of the `/proc` mounted, from
/// the `/proc/self` link; 0 if it does not resolve. Async-signal-safe.
fn own_proc_pid() -> u32 {
    let mut buf = [0u8; 16];
    // SAFETY: readlink(2) with a NUL-terminated path, into a buffer valid
    // for writes of its length; it returns how many bytes it wrote, or -1.
    let n = unsafe { libc::readlink(c"/proc/self".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let Ok(len) = usize::try_from(n) else {
        return 0;
    };
    buf[..len.min(buf.len())]
        .iter()
        .try_fold(0u32, |acc, b| {
            let digit = u32::from(b.checked_sub(b'0').filter(|d| *d < 10)?);
            acc.checked_mul(10)?.checked_add(digit)
        })
        .unwrap_or(0)
}

/// Makes the kernel kill the calling child when its parent dies, and checks
/// that the parent has not died already. Async-signal-safe.
///
/// The signal comes when the *thread* that forked exits: the threads that
/// fork helpers wait for them, so that is when the parent is gone.
fn die_with_parent(parent: i32) -> Result<(), ChildFailure> {
    let failed = |errno| ChildFailure {
        step: ChildStep::ParentDeath,
        errno,
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(failed(Errno::last()));
    }
    // SAFETY: getppid(2) takes no argument and cannot fail.
    if unsafe { libc::getppid() } != parent {
        // Reparented: the parent died before the signal was armed.
        return Err(failed(Errno::ESRCH));
    }
    Ok(())
}
