//! A thread's namespace links (`/proc/thread-self/ns/*`), read through fds
//! of the links themselves.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::errno::Errno;

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
pub(crate) fn parse_link_ino(text: &[u8]) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::parse_link_ino;

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
}
