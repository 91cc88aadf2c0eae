//! Real failures of real system calls, on the **calling thread** only: a
//! seccomp filter that makes a call fail with a chosen errno, and a thread
//! without `CAP_SYS_ADMIN`. Use them on a thread of the test's own (see
//! [`on_fresh_thread`](crate::on_fresh_thread)): they last as long as it.

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// A BPF statement: `code` with constant `k`.
fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A BPF jump: on the accumulator equal to `k`, skip `jt` instructions,
/// else `jf`.
fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    }
}

/// A seccomp filter that makes one system call fail with a chosen errno,
/// built in advance so that it can be installed where nothing may
/// allocate (a forked child before `exec`, through `pre_exec`).
#[derive(Debug)]
pub struct Refusal {
    program: Vec<libc::sock_filter>,
}

impl Refusal {
    /// Refuses system call `nr` with `errno` whenever the low halves of its
    /// arguments are as given (`(index, value)`).
    pub fn new(nr: i64, args: &[(u32, u32)], errno: i32) -> Refusal {
        // Jump offsets count from the next instruction; the last one allows.
        let n = args.len() as u8;
        let mut program = vec![
            stmt(LD_W_ABS, 4),             // seccomp_data.arch
            jeq(AUDIT_ARCH, 0, 2 * n + 3), // other ABI: allow
            stmt(LD_W_ABS, 0),             // seccomp_data.nr
            jeq(nr as u32, 0, 2 * n + 1),  // another call: allow
        ];
        for (i, &(index, value)) in args.iter().enumerate() {
            program.push(stmt(LD_W_ABS, 16 + 8 * index)); // low half of args[index]
            program.push(jeq(value, 0, 2 * (n - i as u8) - 1));
        }
        program.push(stmt(RET_K, RET_ERRNO | (errno as u32 & 0xffff)));
        program.push(stmt(RET_K, RET_ALLOW));
        Refusal { program }
    }

    /// Installs the filter on the calling thread, with `no_new_privs`: it
    /// lasts as long as the thread, is inherited by the threads it starts,
    /// and survives `exec`. Makes two `prctl` calls and nothing else, so it
    /// may run in a forked child.
    ///
    /// # Errors
    ///
    /// If either `prctl` fails.
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut _,
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: PR_SET_SECCOMP reads `prog` and the filter it points to,
        // both alive until it returns.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Makes system call `nr` on the **calling thread** fail with `errno`
/// whenever the low halves of its arguments are as given (`(index,
/// value)`), with a seccomp filter ([`Refusal`]). The filter lasts as long
/// as the thread and is inherited by the threads it starts: use it on a
/// thread of the test's own.
///
/// # Panics
///
/// If the filter cannot be installed.
pub fn fail_syscall_on_this_thread(nr: i64, args: &[(u32, u32)], errno: i32) {
    if let Err(err) = Refusal::new(nr, args, errno).install() {
        panic!("install seccomp filter: {err}");
    }
}

/// Makes `setns(2)` on the **calling thread** fail with `errno` whenever its
/// `nstype` argument is `nstype`. See [`fail_syscall_on_this_thread`].
pub fn fail_setns_on_this_thread(nstype: i32, errno: i32) {
    fail_syscall_on_this_thread(libc::SYS_setns, &[(1, nstype as u32)], errno);
}

/// Drops `CAP_SYS_ADMIN` from the effective set of the **calling thread**
/// only (capabilities are per thread), so that `setns` fails with EPERM.
///
/// # Panics
///
/// If the capability cannot be dropped.
pub fn drop_cap_sys_admin_on_this_thread() {
    caps::drop(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .expect("drop CAP_SYS_ADMIN");
}
