//! The system calls nsguard makes, as small safe functions over borrowed fds.
//!
//! This is the only module with `unsafe` code: the `NS_GET_NSTYPE` ioctl,
//! which no safe wrapper offers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno as NixErrno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statfs::NSFS_MAGIC;

use crate::errno::Errno;
use crate::kind::NsKind;

/// Flags every namespace fd is opened with.
///
/// `O_RDONLY|O_CLOEXEC` as `setns(2)` needs and so that no child process
/// inherits it; `O_NOCTTY` and `O_NONBLOCK` so that a wrong path naming a
/// terminal or a FIFO can neither become the controlling terminal nor block
/// the open: the file is inspected before it is used, and refused if it is
/// not a namespace.
const OPEN_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// `open(2)` a namespace file (or anything else, to be inspected).
pub(crate) fn open(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(path, OPEN_FLAGS, Mode::empty()).map_err(Errno::from_nix)
}

/// `openat(2)` a namespace file relative to a directory fd.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(dir, name, OPEN_FLAGS, Mode::empty()).map_err(Errno::from_nix)
}

/// `open(2)` a directory to resolve names in it later with [`open_at`].
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Errno::from_nix)
}

/// What `fstat` says about an fd: `(st_dev, st_ino, file type bits)`.
pub(crate) fn stat(fd: BorrowedFd<'_>) -> Result<(u64, u64, u32), Errno> {
    let st = nix::sys::stat::fstat(fd).map_err(Errno::from_nix)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.st_dev as u64, st.st_ino as u64, st.st_mode as u32))
}

/// Whether the fd is on nsfs, the file system of namespace files.
pub(crate) fn is_nsfs(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    let fs = nix::sys::statfs::fstatfs(fd).map_err(Errno::from_nix)?;
    Ok(fs.filesystem_type() == NSFS_MAGIC)
}

/// A description of a file type from `st_mode`, for error messages.
pub(crate) fn describe_mode(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "a file of unknown type",
    }
}

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_NSTYPE)` (`_IO(0xb7, 0x3)`, Linux 4.11).
    ns_get_nstype_raw,
    0xb7,
    0x3
);

/// The `CLONE_NEW*` type of the namespace behind an nsfs fd.
///
/// Call only on an fd that [`is_nsfs`]: the request number means nothing
/// to nsfs's neighbours, and a device driver might act on it.
pub(crate) fn ns_get_nstype(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument, so the kernel reads and
    // writes no user memory; it only inspects the file, which `fd` keeps
    // open for the duration of the call. The caller has checked that the
    // file is on nsfs, which defines this request.
    unsafe { ns_get_nstype_raw(fd.as_raw_fd()) }.map_err(Errno::from_nix)
}

/// `setns(2)` with the kind's `CLONE_NEW*` flag, so that the kernel refuses
/// an fd of any other kind.
pub(crate) fn setns(fd: impl AsFd, kind: NsKind) -> Result<(), Errno> {
    nix::sched::setns(fd, CloneFlags::from_bits_retain(kind.clone_flag())).map_err(Errno::from_nix)
}

/// `unshare(CLONE_FS)`: gives the calling thread its own root, cwd and
/// umask, which it needs before it can change mount namespace.
pub(crate) fn unshare_fs() -> Result<(), Errno> {
    nix::sched::unshare(CloneFlags::CLONE_FS).map_err(Errno::from_nix)
}

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_USERNS)` (`_IO(0xb7, 0x1)`, Linux 4.9).
    ns_get_userns_raw,
    0xb7,
    0x1
);

/// An fd of the user namespace that owns the namespace behind `fd`.
/// Call only on an nsfs fd (see [`ns_get_nstype`]).
pub(crate) fn ns_get_userns(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: NS_GET_USERNS takes no argument: the kernel reads and writes
    // no user memory and returns a new fd, or -1.
    let raw = unsafe { ns_get_userns_raw(fd.as_raw_fd()) }.map_err(Errno::from_nix)?;
    // SAFETY: on success the ioctl returns a new file descriptor that
    // nothing else owns (opened O_CLOEXEC by the kernel).
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Makes every mount of the calling thread's mount namespace private,
/// recursively, so that nothing mounted there propagates elsewhere.
pub(crate) fn make_mounts_private() -> Result<(), Errno> {
    use nix::mount::MsFlags;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(Errno::from_nix)
}

/// A forked single-threaded child that has entered some namespaces and
/// created others, and waits until [`ForkedHelper::release`].
pub(crate) struct ForkedHelper {
    pid: nix::unistd::Pid,
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
/// child to the parent as 9 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildFailure {
    pub(crate) step: ChildStep,
    pub(crate) errno: Errno,
}

impl ChildFailure {
    const LEN: usize = 9;

    fn start(errno: Errno) -> ChildFailure {
        ChildFailure {
            step: ChildStep::Start,
            errno,
        }
    }

    /// Writes the outcome of a plan to `fd` (all zeros: it succeeded).
    /// Async-signal-safe.
    fn report(outcome: Result<(), ChildFailure>, fd: RawFd) {
        let mut msg = [0u8; Self::LEN];
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
        let mut msg = [0u8; Self::LEN];
        if read_full(fd, &mut msg) != Self::LEN {
            return None;
        }
        let index = u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize;
        let errno = Errno::from_raw(i32::from_le_bytes([msg[5], msg[6], msg[7], msg[8]]));
        let step = match msg[0] {
            0 => return Some(Ok(())),
            2 => ChildStep::Setns(index),
            3 => ChildStep::Unshare,
            4 => ChildStep::PrivateMounts,
            5 => ChildStep::Chdir,
            6 => ChildStep::ParentDeath,
            7 => ChildStep::CloseFds,
            8 => ChildStep::Creds,
            _ => ChildStep::Start,
        };
        Some(Err(ChildFailure { step, errno }))
    }

    /// Reports this failure on `fd` and returns it as the `io::Error`
    /// `pre_exec` expects (which does not allocate). Async-signal-safe.
    pub(crate) fn send(self, fd: RawFd) -> std::io::Error {
        Self::report(Err(self), fd);
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
            keep: &keep,
            close_range: crate::probe::kernel().close_range,
            fd_limit: fd_limit(),
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
                    go: Some(go_w),
                };
                let failure = match ChildFailure::receive(ready_r.as_fd()) {
                    Some(Ok(())) => return Ok(helper),
                    Some(Err(failure)) => failure,
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

    pub(crate) fn pid(&self) -> u32 {
        // fork(2) returned it: positive.
        self.pid.as_raw().unsigned_abs()
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
    /// The fds to keep open, sorted.
    keep: &'a [i32],
    /// Whether the kernel has `close_range(2)` (5.9).
    close_range: bool,
    /// The soft `RLIMIT_NOFILE`: no fd is numbered as high, unless the
    /// limit was lowered after it was opened.
    fd_limit: u32,
    /// The parent's pid, to tell whether it died before the child could
    /// tie its life to it.
    parent: i32,
}

/// The soft limit on open fds, for the last-resort close loop.
fn fd_limit() -> u32 {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    u32::try_from(soft).unwrap_or(u32::MAX)
}

/// The forked child: async-signal-safe system calls only.
fn child_main(plan: &ChildPlan, inherit: &Inherited<'_>, ready: i32, go: i32) -> ! {
    let outcome = die_with_parent(inherit.parent)
        .and_then(|()| close_inherited(inherit))
        .and_then(|()| plan.apply());
    let failed = outcome.is_err();
    ChildFailure::report(outcome, ready);
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

/// Closes every fd the child inherited except 0-2 and `inherit.keep`, so
/// that it holds none of the parent's files, sockets or pipe ends (which
/// close-on-exec does not help with: the child never execs).
/// Async-signal-safe.
///
/// `close_range(2)` where the kernel has it; else the fds that
/// `/proc/self/fd` lists, read with raw `getdents64` into a buffer on the
/// stack; else (no `/proc`) every fd below the fd limit.
fn close_inherited(inherit: &Inherited<'_>) -> Result<(), ChildFailure> {
    if inherit.close_range && close_ranges(inherit.keep).is_ok() {
        return Ok(());
    }
    if close_listed(inherit.keep).is_ok() {
        return Ok(());
    }
    close_below(inherit.keep, inherit.fd_limit).map_err(|errno| ChildFailure {
        step: ChildStep::CloseFds,
        errno: Errno::from_nix(errno),
    })
}

/// `close_range(2)` over the gaps between the kept fds.
fn close_ranges(keep: &[i32]) -> Result<(), NixErrno> {
    let mut next: u32 = 3;
    for &fd in keep {
        let fd = fd as u32;
        if fd > next {
            // SAFETY: close_range(2) takes integers only.
            NixErrno::result(unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0) })?;
        }
        next = next.max(fd + 1);
    }
    // SAFETY: as above.
    NixErrno::result(unsafe { libc::syscall(libc::SYS_close_range, next, u32::MAX, 0) })?;
    Ok(())
}

/// Closes what `/proc/self/fd` lists, reading it again until a pass finds
/// nothing to close.
fn close_listed(keep: &[i32]) -> Result<(), NixErrno> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: open(2) with a NUL-terminated path.
    let dir = unsafe { libc::open(c"/proc/self/fd".as_ptr(), flags) };
    if dir < 0 {
        return Err(NixErrno::last());
    }
    let result = (|| loop {
        // SAFETY: lseek(2) takes integers only.
        NixErrno::result(unsafe { libc::lseek(dir, 0, libc::SEEK_SET) })?;
        let mut closed = false;
        // u64s: getdents64 writes 8-byte aligned records.
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: getdents64(2) writes at most the given number of bytes
            // into `buf`, which is that long.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    dir,
                    buf.as_mut_ptr(),
                    std::mem::size_of_val(&buf),
                )
            };
            let n = usize::try_from(NixErrno::result(n)?).unwrap_or(0);
            if n == 0 {
                break;
            }
            // SAFETY: the kernel initialised the first `n` bytes of `buf`,
            // which is at least that long; u8 has no alignment.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            let mut at = 0;
            // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16,
            // d_type u8, then the NUL-terminated name.
            while at + 19 < n {
                let reclen = usize::from(u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]));
                if reclen == 0 || at + reclen > n {
                    return Err(NixErrno::EIO);
                }
                if let Some(fd) = parse_fd(&bytes[at + 19..at + reclen]) {
                    if fd > 2 && fd != dir && keep.binary_search(&fd).is_err() {
                        // SAFETY: close(2) of an fd this child inherited and
                        // nothing in it uses.
                        unsafe { libc::close(fd) };
                        closed = true;
                    }
                }
                at += reclen;
            }
        }
        if !closed {
            return Ok(());
        }
    })();
    // SAFETY: close(2) of the directory opened above.
    unsafe { libc::close(dir) };
    result
}

/// The fd number a `/proc/self/fd` entry names (`None` for `.` and `..`).
fn parse_fd(name: &[u8]) -> Option<i32> {
    let mut fd: i32 = 0;
    let mut digits = 0;
    for &b in name.iter().take_while(|b| **b != 0) {
        if !b.is_ascii_digit() {
            return None;
        }
        fd = fd.checked_mul(10)?.checked_add(i32::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(fd)
}

/// Closes every fd from 3 below `limit` but `keep`; `EBADF` is expected.
fn close_below(keep: &[i32], limit: u32) -> Result<(), NixErrno> {
    for fd in 3..i32::try_from(limit).unwrap_or(i32::MAX) {
        if keep.binary_search(&fd).is_ok() {
            continue;
        }
        // SAFETY: close(2) of an fd number this child may have inherited.
        if unsafe { libc::close(fd) } != 0 && NixErrno::last() != NixErrno::EBADF {
            return Err(NixErrno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_fd, parse_link_ino};

    #[test]
    fn namespace_link_texts_parse() {
        assert_eq!(parse_link_ino(b"net:[4026531833]"), Some(4026531833));
        assert_eq!(parse_link_ino(b"pid_for_children:[1]"), Some(1));
        assert_eq!(parse_link_ino(b"net:[]"), None);
        assert_eq!(parse_link_ino(b"net:[12"), None);
        assert_eq!(parse_link_ino(b"net:[1x2]"), None);
        assert_eq!(parse_link_ino(b"net:[99999999999999999999999]"), None);
        assert_eq!(parse_link_ino(b"/run/netns/blue"), None);
    }

    #[test]
    fn fd_names_parse() {
        assert_eq!(parse_fd(b"17\0"), Some(17));
        assert_eq!(parse_fd(b"0\0\0\0"), Some(0));
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
        assert_eq!(parse_fd(b"99999999999\0"), None);
    }
}

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_PARENT)` (`_IO(0xb7, 0x2)`, Linux 4.9).
    ns_get_parent_raw,
    0xb7,
    0x2
);

/// An fd of the parent of the (user or pid) namespace behind `fd`; `EPERM`
/// when the parent is outside the caller's reach. Call only on nsfs fds.
pub(crate) fn ns_get_parent(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: NS_GET_PARENT takes no argument: the kernel reads and writes
    // no user memory and returns a new fd, or -1.
    let raw = unsafe { ns_get_parent_raw(fd.as_raw_fd()) }.map_err(Errno::from_nix)?;
    // SAFETY: on success the ioctl returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `openat(2)` the link `name` in `dir` itself (`O_PATH|O_NOFOLLOW`), to
/// read it again and again with [`link_ino`].
pub(crate) fn open_link_at(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Errno::from_nix)
}

/// The inode number in the target of the `/proc/*/ns/*` link that `link`
/// (from [`open_link_at`]) is: `readlinkat(link, "")` into a buffer on the
/// stack. Reading the link through its own fd skips the name lookup that
/// `readlinkat(dir, name)` pays (about 0.4 us of its 2 us here); the rest
/// is the kernel's readlink of a namespace link.
pub(crate) fn link_ino(link: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut buf = [0u8; 64];
    // SAFETY: the path is a valid NUL-terminated string and `buf` is valid
    // for writes of `buf.len()` bytes; the kernel writes at most that many
    // and returns how many it wrote, or -1.
    let n = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(n).map_err(|_| Errno::last())?;
    parse_link_ino(&buf[..len]).ok_or(Errno::EINVAL)
}

/// The inode number in a namespace link's text, `net:[4026531833]`.
fn parse_link_ino(text: &[u8]) -> Option<u64> {
    let open = text.iter().position(|b| *b == b'[')?;
    let digits = text.get(open + 1..)?.strip_suffix(b"]")?;
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        let digit = u64::from(b.checked_sub(b'0').filter(|d| *d < 10)?);
        acc.checked_mul(10)?.checked_add(digit)
    })
}

/// The whole content of a (proc) file from offset 0, with `pread`, into
/// `buf` (its capacity is kept from call to call): a `/proc` file kept open
/// is generated anew by each read at offset 0. A read that leaves room in
/// the buffer has read it all (a seq_file hands over all it generated);
/// only a full buffer needs another read.
pub(crate) fn pread_into(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<(), Errno> {
    let size = buf.capacity().max(4096);
    buf.clear();
    buf.resize(size, 0);
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let offset = libc::off_t::try_from(len).map_err(|_| Errno::EOVERFLOW)?;
        match nix::sys::uio::pread(fd, &mut buf[len..], offset) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(NixErrno::EINTR) => continue,
            Err(errno) => return Err(Errno::from_nix(errno)),
        }
    }
    buf.truncate(len);
    Ok(())
}

/// `(st_dev, st_ino)` of what `name` in `dir` refers to, following links
/// (for `/proc/thread-self/root` and `cwd`: the directories themselves).
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> Result<(u64, u64), Errno> {
    let st =
        nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::empty()).map_err(Errno::from_nix)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Whether threads `a` and `b` (thread ids) share one fs context
/// (root, cwd, umask): `kcmp(2)` with `KCMP_FS` (Linux 3.5,
/// `CONFIG_KCMP`).
pub(crate) fn kcmp_fs(a: i32, b: i32) -> Result<bool, Errno> {
    const KCMP_FS: libc::c_long = 3;
    // SAFETY: kcmp(2) takes integers only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(a),
            libc::c_long::from(b),
            KCMP_FS,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    NixErrno::result(rc).map(|r| r == 0).map_err(Errno::from_nix)
}

/// The calling thread's securebits (`PR_GET_SECUREBITS`).
pub(crate) fn securebits() -> Result<i32, Errno> {
    // SAFETY: PR_GET_SECUREBITS takes no pointer argument.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    NixErrno::result(rc).map_err(Errno::from_nix)
}

/// `socket(2)` with `SOCK_CLOEXEC` added to `ty`.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2) takes integers only.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    let raw = NixErrno::result(raw).map_err(Errno::from_nix)?;
    // SAFETY: on success socket(2) returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
