//! Whether a thread that leaves a namespace can come back to it.
//!
//! `setns(2)` needs `CAP_SYS_ADMIN` in the user namespace that owns the
//! target. A process inside a user namespace (say, under `unshare -Ur`) can
//! leave a namespace owned by an ancestor user namespace, but never return
//! to it: it has no capabilities there. nsguard finds that out before it
//! switches anything.

use std::os::fd::AsFd;

use crate::errno::Errno;
use crate::error::Result;
use crate::handle::namespace::Namespace;
use crate::id::NsId;
use crate::kind::NsKind;
use crate::sys;
use crate::sys::fork_local::ForkLocal;

/// The inode of the initial user namespace, fixed by the kernel
/// (`PROC_USER_INIT_INO` in `include/linux/proc_ns.h`); no other namespace
/// can have it.
const PROC_USER_INIT_INO: u64 = 0xEFFF_FFFD;

/// The process's user namespace (the same for all its threads, which cannot
/// change it), found once per fork generation: a forked child, which may
/// have entered another one, looks again.
pub(crate) fn own_user_ns() -> Result<NsId> {
    static OWN: ForkLocal<NsId> = ForkLocal::new();
    OWN.get_or_try_make(|| Namespace::current_unchecked(NsKind::User).map(|ns| ns.id()))
        .copied()
}

/// Whether the process is in the initial user namespace (true if that
/// cannot be told).
pub(crate) fn in_initial_user_ns() -> bool {
    own_user_ns().map_or(true, |id| id.ino() == PROC_USER_INIT_INO)
}

/// Whether `ns` is owned by the caller's user namespace or one below it,
/// so that a thread with `CAP_SYS_ADMIN` can enter it again later. User
/// namespaces themselves are never re-entered by threads, so they are
/// reported as one-way.
pub(crate) fn can_return_to(ns: &Namespace) -> Result<bool> {
    if ns.kind() == NsKind::User {
        return Ok(false);
    }
    let own = own_user_ns()?;
    // In the initial user namespace every namespace is owned by it or by a
    // namespace below it: no need to ask (the ioctl costs microseconds).
    if own.ino() == PROC_USER_INIT_INO {
        return Ok(true);
    }
    let mut user = match sys::ns_get_userns(ns.as_fd()) {
        Ok(fd) => fd,
        // The owner is outside the caller's user namespace.
        Err(Errno::EPERM) => return Ok(false),
        Err(_) => return Ok(true), // cannot tell: let setns decide, as before
    };
    loop {
        let (dev, ino, _) = match sys::stat(user.as_fd()) {
            Ok(st) => st,
            Err(_) => return Ok(true),
        };
        if NsId::new(NsKind::User, dev, ino) == own {
            return Ok(true);
        }
        user = match sys::ns_get_parent(user.as_fd()) {
            Ok(parent) => parent,
            // Walked above the caller's user namespace without meeting it.
            Err(Errno::EPERM) => return Ok(false),
            Err(_) => return Ok(true),
        };
    }
}
