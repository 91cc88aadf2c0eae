//! The seccomp filter: a classic BPF program, written out by hand.

/// `ENOSYS` for calls the emulated kernel lacks, as the kernel answers a
/// number missing from its table.
const ENOSYS: u32 = libc::ENOSYS as u32;
const EINVAL: u32 = libc::EINVAL as u32;
/// `CLONE_NEWTIME` (5.6).
pub const CLONE_NEWTIME: u32 = 0x80;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// x32 system calls carry this bit: refused (they would bypass the table).
#[cfg(target_arch = "x86_64")]
const X32_BIT: u32 = 0x4000_0000;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets in `struct seccomp_data`: nr, arch, then `args[i]` at 16 + 8 i
/// (the low 32 bits first: both architectures are little-endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

/// The system calls whose path argument the supervisor inspects, with the
/// index of their directory-fd argument (`None`: relative to the cwd) and
/// of their path argument.
pub fn path_calls(missing: &[(u32, u32)]) -> Vec<(u32, Option<usize>, usize)> {
    let mut calls = vec![
        (libc::SYS_openat as u32, Some(0), 1),
        (libc::SYS_newfstatat as u32, Some(0), 1),
        (libc::SYS_statx as u32, Some(0), 1),
        (libc::SYS_readlinkat as u32, Some(0), 1),
        (libc::SYS_faccessat as u32, Some(0), 1),
        // mount(2)'s source: a bind mount of a namespace file.
        (libc::SYS_mount as u32, None, 0),
        (SYS_OPENAT2, Some(0), 1),
        (SYS_FACCESSAT2, Some(0), 1),
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        (libc::SYS_open as u32, None, 0),
        (libc::SYS_stat as u32, None, 0),
        (libc::SYS_lstat as u32, None, 0),
        (libc::SYS_readlink as u32, None, 0),
        (libc::SYS_access as u32, None, 0),
    ]);
    calls.retain(|(nr, _, _)| !is_missing(missing, *nr));
    calls
}

pub const SYS_CLONE3: u32 = 435;
const SYS_OPENAT2: u32 = 437;
const SYS_FACCESSAT2: u32 = 439;

pub fn is_missing(missing: &[(u32, u32)], nr: u32) -> bool {
    missing.iter().any(|(lo, hi)| (*lo..=*hi).contains(&nr))
}

/// A jump target: the next instruction, or a label.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

struct Insn {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

/// A tiny assembler: jumps go to labels, resolved at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn {
            code,
            k,
            jt: To::Next,
            jf: To::Next,
        });
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.insns.push(Insn { code, k, jt, jf });
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>, String> {
        let offset = |at: usize, to: To| -> Result<u8, String> {
            match to {
                To::Next => Ok(0),
                To::Label(l) => {
                    let target = self.labels[l].ok_or("a label was never placed")?;
                    u8::try_from(target.checked_sub(at + 1).ok_or("a jump goes backwards")?)
                        .map_err(|_| "a jump is too long".to_string())
                }
            }
        };
        self.insns
            .iter()
            .enumerate()
            .map(|(at, i)| {
                Ok(libc::sock_filter {
                    code: i.code,
                    jt: offset(at, i.jt)?,
                    jf: offset(at, i.jf)?,
                    k: i.k,
                })
            })
            .collect()
    }
}

/// The program: `ENOSYS` for every call in `missing`; with `hide_time`,
/// `EINVAL` for `unshare`/`setns` with `CLONE_NEWTIME`, and the calls of
/// [`path_calls`] and `clone3` handed to the supervisor.
pub fn program(missing: &[(u32, u32)], hide_time: bool) -> Result<Vec<libc::sock_filter>, String> {
    let mut a = Asm::default();
    let (allow, enosys, einval, notify) = (a.label(), a.label(), a.label(), a.label());
    let (unshare, setns) = (a.label(), a.label());

    a.stmt(LD_W_ABS, ARCH);
    // Another ABI (x86_64's i386 emulation): not emulated, let it through.
    a.jump(JEQ_K, AUDIT_ARCH, To::Next, To::Label(allow));
    a.stmt(LD_W_ABS, NR);
    #[cfg(target_arch = "x86_64")]
    a.jump(JGE_K, X32_BIT, To::Label(enosys), To::Next);
    for &(lo, hi) in missing {
        let next = a.label();
        a.jump(JGE_K, lo, To::Next, To::Label(next));
        a.jump(JGT_K, hi, To::Label(next), To::Label(enosys));
        a.place(next);
    }
    if hide_time {
        a.jump(
            JEQ_K,
            libc::SYS_unshare as u32,
            To::Label(unshare),
            To::Next,
        );
        a.jump(JEQ_K, libc::SYS_setns as u32, To::Label(setns), To::Next);
        let mut notified: Vec<u32> = path_calls(missing).iter().map(|c| c.0).collect();
        if !is_missing(missing, SYS_CLONE3) {
            notified.push(SYS_CLONE3);
        }
        for nr in notified {
            a.jump(JEQ_K, nr, To::Label(notify), To::Next);
        }
    }
    a.stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    // unshare(flags): the flags are an int, the low half of args[0].
    a.place(unshare);
    a.stmt(LD_W_ABS, arg_low(0));
    a.jump(JSET_K, CLONE_NEWTIME, To::Label(einval), To::Label(allow));
    // setns(fd, nstype): no fd can name a time namespace here, and the
    // kernel answers a type that does not match the fd with EINVAL.
    a.place(setns);
    a.stmt(LD_W_ABS, arg_low(1));
    a.jump(JSET_K, CLONE_NEWTIME, To::Label(einval), To::Label(allow));
    // The outcomes, last: classic BPF only jumps forward.
    a.place(allow);
    a.stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    a.place(enosys);
    a.stmt(RET_K, libc::SECCOMP_RET_ERRNO | ENOSYS);
    a.place(einval);
    a.stmt(RET_K, libc::SECCOMP_RET_ERRNO | EINVAL);
    a.place(notify);
    a.stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{missing, Release};

    #[test]
    fn programs_assemble() {
        for (release, hide) in [
            (Release(4, 18), true),
            (Release(5, 4), true),
            (Release(6, 1), false),
        ] {
            let prog = program(&missing(release), hide).unwrap();
            assert!(prog.len() < 100, "{}", prog.len());
        }
    }

    #[test]
    fn path_calls_skip_missing_ones() {
        let old = path_calls(&missing(Release(4, 18)));
        assert!(!old
            .iter()
            .any(|c| c.0 == SYS_OPENAT2 || c.0 == SYS_FACCESSAT2));
        let new = path_calls(&missing(Release(6, 1)));
        assert!(new.iter().any(|c| c.0 == SYS_OPENAT2));
    }
}
