//! `kernel-emu`: runs a command as if on an older Linux kernel, so that the
//! test suite proves what nsguard does there. Test tooling, not published.
//!
//! ```text
//! kernel-emu --kernel 5.4 -- target/debug/deps/run-0123abcd
//! kernel-emu --kernel 6.1 --no-time-ns -- ...   # a kernel built without CONFIG_TIME_NS
//! ```
//!
//! For the command and every process and thread it starts (a seccomp filter
//! is inherited and cannot be removed):
//!
//! - every system call newer than the emulated release fails with
//!   `ENOSYS`, as on a kernel whose table lacks it (`close_range` below 5.9,
//!   `clone3` and `pidfd_open` below 5.3, `openat2` below 5.6, …; see
//!   `table.rs`), and so does every call numbered past the table;
//! - below 5.6, or with `--no-time-ns`, time namespaces are absent:
//!   `unshare`, `setns` and `clone3` with `CLONE_NEWTIME` fail with
//!   `EINVAL`, and `/proc/<pid>/ns/time` and `time_for_children` do not
//!   exist (`ENOENT`) for `open`, `openat`, `openat2`, `stat`, `lstat`,
//!   `newfstatat`, `statx`, `readlink(at)`, `access`, `faccessat(2)` and
//!   `mount`'s source. A filter cannot read a path, so those calls are
//!   handed to a supervisor in this process through a seccomp user
//!   notification listener (see `supervisor.rs`): it answers `ENOENT` for
//!   the time files and lets everything else continue in the kernel.
//!
//! The errors are the kernel's own: nothing is mocked in the program under
//! test. What this cannot emulate: changed behaviour of calls that exist in
//! both releases, kernel configuration, distribution backports, and
//! `getdents64` on `/proc/<pid>/ns` (a listing still shows `time`). The
//! host needs Linux 5.5 or later (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! Hand-written BPF rather than `seccompiler`: the filter needs
//! `SECCOMP_RET_USER_NOTIF` and a listener fd
//! (`SECCOMP_FILTER_FLAG_NEW_LISTENER`), which `seccompiler` does not
//! offer; the program is ~60 instructions.

mod filter;
mod supervisor;
mod table;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use table::Release;

const USAGE: &str = "usage: kernel-emu --kernel MAJOR.MINOR [--no-time-ns] -- COMMAND [ARG...]";

struct Options {
    release: Release,
    hide_time: bool,
    command: Vec<CString>,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args_os().skip(1);
    let mut release = None;
    let mut no_time = false;
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--kernel") => {
                let value = args.next().ok_or("--kernel needs a release like 5.4")?;
                let value = value.to_str().ok_or("--kernel needs a release like 5.4")?;
                release = Some(value.parse::<Release>()?);
            }
            Some("--no-time-ns") => no_time = true,
            Some("--") => {
                for arg in args.by_ref() {
                    command.push(
                        CString::new(arg.as_bytes()).map_err(|_| "an argument contains NUL")?,
                    );
                }
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let release = release.ok_or("--kernel is required")?;
    if release < table::OLDEST {
        return Err(format!(
            "cannot emulate {release}: the table starts at {}",
            table::OLDEST
        ));
    }
    if command.is_empty() {
        return Err("no command given".into());
    }
    Ok(Options {
        release,
        hide_time: no_time || release < table::TIME_NS,
        command,
    })
}

fn main() -> ExitCode {
    match parse().and_then(|options| run(&options)) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("kernel-emu: {message}\n{USAGE}");
            ExitCode::from(125)
        }
    }
}

fn last_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn run(options: &Options) -> Result<u8, String> {
    let missing = table::missing(options.release);
    let program = filter::program(&missing, options.hide_time)?;
    let calls = filter::path_calls(&missing);
    let mut pair = [0; 2];
    // SAFETY: socketpair(2) writes two fds into `pair`.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(last_error("socketpair"));
    }
    // SAFETY: the fd is new and owned by nothing else.
    let ours = unsafe { OwnedFd::from_raw_fd(pair[0]) };
    // SAFETY: as above.
    let theirs = unsafe { OwnedFd::from_raw_fd(pair[1]) };
    let mut argv: Vec<*const libc::c_char> = options.command.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: this process has one thread, so the child may do anything;
    // it only installs the filter, passes the listener and execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_error("fork"));
    }
    if pid == 0 {
        drop(ours);
        let err = child(&program, options.hide_time, &theirs, &argv);
        eprintln!("kernel-emu: {err}");
        // SAFETY: _exit(2) ends the child without running destructors.
        unsafe { libc::_exit(127) };
    }
    drop(theirs);
    if options.hide_time {
        let listener = receive_fd(&ours)?;
        std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || supervisor::serve(&listener, &calls))
            .map_err(|e| format!("starting the supervisor: {e}"))?;
    }
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) writes the status into `status`.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(last_error("waitpid"));
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    })
}

/// In the child: install the filter, hand its listener over, exec.
fn child(
    program: &[libc::sock_filter],
    listen: bool,
    sock: &OwnedFd,
    argv: &[*const libc::c_char],
) -> String {
    use std::os::fd::AsRawFd;
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    let flags = if listen {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    let install = || {
        // SAFETY: seccomp(2) reads `prog` and the program it points to,
        // both alive until it returns.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    let mut rc = install();
    if rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) {
        // Without CAP_SYS_ADMIN a filter needs no_new_privs.
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        rc = install();
    }
    if rc < 0 {
        return last_error("installing the seccomp filter");
    }
    if listen {
        // SAFETY: on success with NEW_LISTENER, seccomp returns a new fd.
        let listener = unsafe { OwnedFd::from_raw_fd(rc as i32) };
        if let Err(err) = send_fd(sock, listener.as_raw_fd()) {
            return err;
        }
    }
    // SAFETY: argv is a null-terminated array of NUL-terminated strings
    // that live until execvp returns (it returns only on failure).
    unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    last_error("exec")
}

/// The space for one fd in a control message.
#[repr(C)]
union Control {
    buf: [u8; 64],
    _align: libc::cmsghdr,
}

fn send_fd(sock: &OwnedFd, fd: i32) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control { buf: [0; 64] };
    // SAFETY: msghdr is plain data; all zeros is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    // SAFETY: CMSG_SPACE computes a size from an integer.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: msg_control points to a buffer of msg_controllen bytes, big
    // enough for one header and one fd, so the first header exists.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: `cmsg` points into `control`, aligned for cmsghdr.
    let header = unsafe { &mut *cmsg };
    header.cmsg_level = libc::SOL_SOCKET;
    header.cmsg_type = libc::SCM_RIGHTS;
    // SAFETY: CMSG_LEN computes a size from an integer.
    header.cmsg_len = unsafe { libc::CMSG_LEN(4) } as usize;
    // SAFETY: CMSG_DATA points just past the header, inside `control`.
    let data = unsafe { libc::CMSG_DATA(cmsg) };
    // SAFETY: there are 4 writable bytes at `data`, maybe unaligned.
    unsafe { data.cast::<i32>().write_unaligned(fd) };
    // SAFETY: sendmsg(2) reads `msg` and what it points to, all alive.
    if unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) } != 1 {
        return Err(last_error("passing the seccomp listener"));
    }
    Ok(())
}

fn receive_fd(sock: &OwnedFd) -> Result<OwnedFd, String> {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control { buf: [0; 64] };
    // SAFETY: msghdr is plain data; all zeros is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = std::mem::size_of::<Control>();
    // SAFETY: recvmsg(2) writes into the buffers `msg` points to, whose
    // sizes it gives.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n != 1 {
        return Err(if n == 0 {
            "the child exited before passing the seccomp listener".into()
        } else {
            last_error("receiving the seccomp listener")
        });
    }
    // SAFETY: `msg` was filled in by recvmsg; CMSG_FIRSTHDR checks the
    // length and returns null when there is no header.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err("no fd came with the message".into());
    }
    // SAFETY: a non-null header lies inside `control`.
    let header = unsafe { &*cmsg };
    if header.cmsg_level != libc::SOL_SOCKET || header.cmsg_type != libc::SCM_RIGHTS {
        return Err("an unexpected control message came".into());
    }
    // SAFETY: CMSG_DATA points just past the header, inside `control`.
    let data = unsafe { libc::CMSG_DATA(cmsg) };
    // SAFETY: an SCM_RIGHTS message carries at least one fd after the
    // header, maybe unaligned.
    let fd = unsafe { data.cast::<i32>().read_unaligned() };
    // SAFETY: the fd was just received: this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
