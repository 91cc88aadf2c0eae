//! Throw-away namespaces of every kind ([`TempNs`]), a named network
//! namespace as `ip netns add` makes ([`NamedNetns`]), and nsguard handles
//! to them ([`open`], [`net_set`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nsguard::{Namespace, NsKind, NsSet};

use crate::ino::{path_ino, thread_file};
use crate::names::unique_name;
use crate::process::ChildGuard;
use crate::threads::on_fresh_thread;

/// A new namespace of one kind, alive while this value is, reachable by
/// [`path`](Self::path): a bind mount under a temporary directory, or for
/// mnt (which cannot be bind-mounted into an older mount namespace) the
/// `/proc/<pid>/fd/<n>` link of the fd that keeps it.
#[derive(Debug)]
pub struct TempNs {
    kind: NsKind,
    file: File,
    /// For pid and time: the first process of the namespace (its init),
    /// without which `pid_for_children` is a dangling link.
    _init: Option<ChildGuard>,
    ino: u64,
    path: PathBuf,
    mounted: bool,
    _dir: Option<tempfile::TempDir>,
}

/// This process's pid as the `/proc` mounted numbers it (which is not
/// `getpid()` when that `/proc` belongs to another pid namespace): a path
/// built from it names this process from any process.
///
/// # Panics
///
/// If `/proc/self` does not resolve.
pub fn proc_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .expect("readlink /proc/self")
        .to_string_lossy()
        .parse()
        .expect("a pid")
}

impl TempNs {
    /// Creates a namespace of `kind`: with `unshare` on a short-lived
    /// thread, or for user namespaces in a short-lived child process.
    ///
    /// # Panics
    ///
    /// If it cannot be made (the tests run as root).
    pub fn new(kind: NsKind) -> TempNs {
        let (file, init) = match kind {
            NsKind::User => (new_user_ns(), None),
            _ => on_fresh_thread(move || {
                let flags = match kind {
                    // A thread shares its fs context; a new mount namespace
                    // needs a private one.
                    NsKind::Mnt => CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS,
                    k => CloneFlags::from_bits_retain(k.clone_flag()),
                };
                unshare(flags).unwrap_or_else(|e| panic!("unshare({kind}): {e}"));
                if kind == NsKind::Mnt {
                    // Nothing mounted inside reaches the host, and the
                    // host's later mounts do not pile up inside.
                    mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .expect("make / private in the new mount namespace");
                }
                let init = matches!(kind, NsKind::Pid | NsKind::Time)
                    .then(|| ChildGuard::spawn_in_new(CloneFlags::empty()));
                let file = File::open(format!("/proc/thread-self/ns/{}", thread_file(kind)))
                    .expect("open the new namespace");
                (file, init)
            }),
        };
        let fd_path = PathBuf::from(format!("/proc/{}/fd/{}", proc_pid(), file.as_raw_fd()));
        let ino = path_ino(&fd_path);
        if kind == NsKind::Mnt {
            return TempNs {
                kind,
                file,
                _init: init,
                ino,
                path: fd_path,
                mounted: false,
                _dir: None,
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("nsguard-test-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join(kind.proc_name());
        File::create(&path).expect("bind mount target");
        mount(
            Some(&fd_path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("bind mount {fd_path:?} on {path:?}: {e}"));
        TempNs {
            kind,
            file,
            _init: init,
            ino,
            path,
            mounted: true,
            _dir: Some(dir),
        }
    }

    /// The kind of the namespace.
    pub fn kind(&self) -> NsKind {
        self.kind
    }

    /// The inode number of the namespace.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// A path that opens the namespace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `/proc/<pid>/fd/<n>`: a path that opens the namespace without a mount.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/fd/{}", proc_pid(), self.file.as_raw_fd()))
    }
}

impl Drop for TempNs {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
                eprintln!("warning: umount {:?}: {e}", self.path);
            }
        }
    }
}

/// A new user namespace, from a child that `unshare`s one and is then
/// killed: a process with threads cannot make one for itself.
fn new_user_ns() -> File {
    let mut child = ChildGuard::spawn_in_new(CloneFlags::CLONE_NEWUSER);
    let file = File::open(format!("/proc/{}/ns/user", child.pid())).expect("open child's user ns");
    child.kill();
    file
}

/// An nsguard handle to `temp`, opened by its path as its kind.
///
/// # Panics
///
/// If nsguard cannot open it.
pub fn open(temp: &TempNs) -> Namespace {
    Namespace::open(temp.path(), temp.kind()).unwrap()
}

/// The set of the network namespace `temp`, opened by its path as a network
/// namespace: `temp` must be one.
///
/// # Panics
///
/// If nsguard cannot open it as a network namespace.
pub fn net_set(temp: &TempNs) -> NsSet {
    NsSet::from(Namespace::open(temp.path(), NsKind::Net).unwrap())
}

/// A bind mount of a new network namespace at a name in `/run/netns`, as
/// `ip netns add` makes, removed on drop.
#[derive(Debug)]
pub struct NamedNetns {
    /// The name under `/run/netns`.
    pub name: String,
    /// `/run/netns/<name>`.
    pub path: PathBuf,
    /// The namespace itself.
    pub ns: TempNs,
}

impl NamedNetns {
    /// Makes a new network namespace and names it.
    ///
    /// # Panics
    ///
    /// If it cannot be made or mounted.
    #[allow(clippy::new_without_default)] // makes a namespace: no default
    pub fn new() -> NamedNetns {
        let ns = TempNs::new(NsKind::Net);
        let name = unique_name("nsguard-test");
        std::fs::create_dir_all("/run/netns").expect("mkdir /run/netns");
        let path = Path::new("/run/netns").join(&name);
        File::create(&path).expect("create /run/netns entry");
        mount(
            Some(ns.path()),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind mount into /run/netns");
        NamedNetns { name, path, ns }
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}
