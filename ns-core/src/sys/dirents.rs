//! Listing a directory with `getdents64(2)`, one call at a time, so that
//! the caller sees where each call ended: a `/proc` directory whose
//! entries change while it is listed does not always resume where the last
//! call stopped (see `thread::census`).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::errno::Errno;

/// The longest record for a name of up to ten digits (a `u32`): the
/// 19-byte header, the name and its NUL, rounded up to 8 bytes.
pub(crate) const NUMBER_RECORD: usize = 32;

/// `open(2)` a directory to list.
pub(crate) fn open_listing(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Errno::from_nix)
}

/// The link count `fstat` gives for an fd: for `/proc/<pid>/task`, two
/// more than the process's threads.
pub(crate) fn link_count(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let st = nix::sys::stat::fstat(fd).map_err(Errno::from_nix)?;
    #[allow(clippy::unnecessary_cast)] // the field type differs between targets
    Ok(st.st_nlink as u64)
}

/// `lseek(2)` a directory fd to entry `index`: for `/proc/<pid>/task`,
/// past the two dots and `index - 2` threads, counted from the first.
pub(crate) fn seek_entries(dir: BorrowedFd<'_>, index: usize) -> Result<(), Errno> {
    let offset = libc::off_t::try_from(index).map_err(|_| Errno::EOVERFLOW)?;
    nix::unistd::lseek(dir, offset, nix::unistd::Whence::SeekSet)
        .map(drop)
        .map_err(Errno::from_nix)
}

/// One `getdents64(2)` call from the fd's position into `buf`: the records
/// it wrote. `u64`s, because the kernel writes 8-byte aligned records.
/// Async-signal-safe.
pub(crate) fn getdents<'a>(dir: BorrowedFd<'_>, buf: &'a mut [u64]) -> Result<Dirents<'a>, Errno> {
    // SAFETY: getdents64(2) writes at most the given number of bytes into
    // `buf`, which is that long.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            std::mem::size_of_val(buf),
        )
    };
    let n = usize::try_from(n).map_err(|_| Errno::last())?;
    let n = n.min(std::mem::size_of_val(buf));
    // SAFETY: the kernel initialised the first `n` bytes of `buf`, which is
    // at least that long and stays borrowed for as long; u8 has no
    // alignment.
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
    Ok(Dirents { bytes })
}

/// One record of what `getdents64(2)` wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dirent<'a> {
    /// `d_ino`.
    pub(crate) ino: u64,
    /// `d_name`, without its NUL.
    pub(crate) name: &'a [u8],
}

/// The records one `getdents64(2)` call wrote, in order. An `EIO` item
/// ends them where a record does not fit (which the kernel never writes).
#[derive(Clone, Debug)]
pub(crate) struct Dirents<'a> {
    bytes: &'a [u8],
}

impl<'a> Dirents<'a> {
    /// Records in `bytes`, as `getdents64(2)` lays them out.
    #[cfg(test)]
    fn new(bytes: &'a [u8]) -> Dirents<'a> {
        Dirents { bytes }
    }

    /// How many bytes the call wrote.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the call wrote nothing: the end of the directory.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl<'a> Iterator for Dirents<'a> {
    type Item = Result<Dirent<'a>, Errno>;

    fn next(&mut self) -> Option<Self::Item> {
        // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16,
        // d_type u8, then the NUL-terminated name.
        const HEADER: usize = 19;
        if self.bytes.is_empty() {
            return None;
        }
        let record = (|| {
            let header = self.bytes.get(..HEADER)?;
            let ino = u64::from_ne_bytes(header[..8].try_into().ok()?);
            let reclen = usize::from(u16::from_ne_bytes([header[16], header[17]]));
            let record = self.bytes.get(HEADER..reclen)?;
            let name = record.split(|b| *b == 0).next().unwrap_or_default();
            Some((Dirent { ino, name }, reclen))
        })();
        match record {
            Some((dirent, reclen)) => {
                self.bytes = &self.bytes[reclen..];
                Some(Ok(dirent))
            }
            None => {
                self.bytes = &[];
                Some(Err(Errno::EIO))
            }
        }
    }
}

/// The parsing, on made-up records (no system call: Miri runs these).
#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the kernel lays it out, its length rounded up to 8.
    fn record(ino: u64, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = Vec::with_capacity(reclen);
        r.extend_from_slice(&ino.to_ne_bytes());
        r.extend_from_slice(&77i64.to_ne_bytes());
        r.extend_from_slice(&u16::try_from(reclen).unwrap().to_ne_bytes());
        r.push(4); // DT_DIR
        r.extend_from_slice(name);
        r.resize(reclen, 0);
        r
    }

    #[test]
    fn records_parse_in_order() {
        let mut bytes = record(1, b".");
        bytes.extend(record(2, b".."));
        bytes.extend(record(4242, b"1234567890"));
        assert_eq!(record(4242, b"1234567890").len(), NUMBER_RECORD);
        let parsed: Vec<_> = Dirents::new(&bytes).map(Result::unwrap).collect();
        assert_eq!(
            parsed,
            [
                Dirent { ino: 1, name: b"." },
                Dirent {
                    ino: 2,
                    name: b".."
                },
                Dirent {
                    ino: 4242,
                    name: b"1234567890"
                },
            ]
        );
        assert!(Dirents::new(&[]).next().is_none());
    }

    #[test]
    fn a_record_that_does_not_fit_ends_them() {
        let good = record(9, b"17");
        for cut in [
            {
                // Cut in its name.
                let mut b = good.clone();
                b.extend(&record(10, b"18")[..21]);
                b
            },
            {
                // A length of zero.
                let mut b = good.clone();
                let mut zero = record(10, b"18");
                zero[16..18].copy_from_slice(&0u16.to_ne_bytes());
                b.extend(zero);
                b
            },
            {
                // A header cut short.
                let mut b = good.clone();
                b.extend(&[0u8; 10]);
                b
            },
        ] {
            let mut records = Dirents::new(&cut);
            assert_eq!(
                records.next(),
                Some(Ok(Dirent {
                    ino: 9,
                    name: b"17"
                }))
            );
            assert_eq!(records.next(), Some(Err(Errno::EIO)));
            assert_eq!(records.next(), None);
        }
    }
}
