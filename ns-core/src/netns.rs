//! Named network namespaces, compatible with iproute2's `ip netns`.
//!
//! What `ip netns add NAME` made, [`Namespace::named`] and [`netns::open`]
//! open; what [`netns::add`] makes, `ip netns exec NAME ...` uses. Like
//! iproute2, [`add`] keeps the namespaces as bind mounts under `/run/netns`
//! and makes that directory a shared mount, so that the bind mounts reach
//! every mount namespace that shares it.
//!
//! [`netns::open`]: open
//! [`netns::add`]: add

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};
use crate::kind::NsKind;
use crate::namespace::{validate_name, Namespace, NETNS_DIRS};
use crate::set::NsSet;

/// The directory `ip netns` keeps named network namespaces in.
pub const RUN_DIR: &str = NETNS_DIRS[0];

fn path_of(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    Ok(Path::new(RUN_DIR).join(name))
}

fn io_error(op: &'static str, path: &Path, errno: Errno) -> Error {
    match errno {
        Errno::EPERM | Errno::EACCES => Error::PermissionDenied {
            op,
            kind: NsKind::Net,
            path: Some(path.to_path_buf()),
            needs: "CAP_SYS_ADMIN, and write access to /run/netns",
            errno,
        },
        errno => Error::Io {
            op,
            kind: NsKind::Net,
            path: Some(path.to_path_buf()),
            errno,
        },
    }
}

/// Opens the network namespace called `name`: the same as
/// [`Namespace::named`].
///
/// # Errors
///
/// See [`Namespace::named`].
pub fn open(name: &str) -> Result<Namespace> {
    Namespace::named(name)
}

/// Creates a new network namespace called `name`, as `ip netns add NAME`
/// does, and returns it.
///
/// # Errors
///
/// - [`Error::InvalidName`] for a name `ip netns` could not use;
/// - [`Error::AlreadyExists`] if `/run/netns/NAME` exists;
/// - [`Error::Io`] if the new name cannot be opened once made (`EMFILE`…);
///   the name is then removed again;
/// - [`Error::PermissionDenied`] without `CAP_SYS_ADMIN`;
/// - the errors of [`NsSet::unshare`] and [`Namespace::persist`].
///
/// # Examples
///
/// ```no_run
/// let blue = nsguard::netns::add("blue")?;   // `ip netns exec blue ...` now works
/// nsguard::netns::delete("blue")?;
/// # Ok::<(), nsguard::Error>(())
/// ```
pub fn add(name: &str) -> Result<Namespace> {
    let path = path_of(name)?;
    prepare_run_dir()?;
    let set = NsSet::unshare(NsKind::Net)?;
    let ns = set.get(NsKind::Net).ok_or_else(|| Error::Worker {
        reason: "no netns was created".into(),
    })?;
    create_exclusive(&path)?;
    if let Err(err) = bind(ns, &path) {
        let _ = std::fs::remove_file(&path);
        return Err(err);
    }
    // Nothing may stay behind when the name cannot be handed out: the bind
    // mount would keep the namespace alive with nobody to delete it.
    Namespace::open(NsKind::Net, &path).inspect_err(|_| {
        let _ = Namespace::unpersist(&path);
    })
}

/// Deletes the network namespace called `name`, as `ip netns delete NAME`
/// does: unmounts and removes `/run/netns/NAME`.
///
/// The namespace itself lives on while a process is in it, a mount or an
/// fd refers to it, or the program holds a [`Namespace`] handle to it.
/// nsguard's own threads never keep it alive: if the program holds no
/// handle to it, `delete` returns only once no nsguard worker is inside
/// (idle workers are sent home first). So once `delete` returns and the
/// program has dropped its handles, the kernel frees the namespace as soon
/// as no other process uses it (asynchronously: the host ends of its veth
/// pairs disappear a few milliseconds later).
///
/// # Errors
///
/// [`Error::InvalidName`]; [`Error::NotFound`] if there is no such name;
/// [`Error::PermissionDenied`] without `CAP_SYS_ADMIN`; [`Error::Worker`]
/// if a worker was still inside after 10 s (it could not leave).
pub fn delete(name: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = path_of(name)?;
    let ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
    Namespace::unpersist(&path)?;
    match ino {
        Some(ino) => crate::executor::wait_until_left(ino, std::time::Duration::from_secs(10)),
        None => Ok(()),
    }
}

/// The names in `/run/netns`, sorted, as `ip netns list` shows them (an
/// empty list if the directory does not exist).
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be read.
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(RUN_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(io_error(
                "listing",
                Path::new(RUN_DIR),
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            ))
        }
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Creates `/run/netns` and makes it a shared mount (binding it onto itself
/// first if it is not a mount point), as iproute2 does.
fn prepare_run_dir() -> Result<()> {
    let dir = Path::new(RUN_DIR);
    std::fs::create_dir_all(dir).map_err(|e| {
        io_error(
            "creating",
            dir,
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet.
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| io_error("bind-mounting", dir, e))?;
            make_shared().map_err(|e| io_error("making shared", dir, e))
        }
        Err(e) => Err(io_error("making shared", dir, e)),
    }
}

fn create_exclusive(path: &Path) -> Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(io_error(
            "creating",
            path,
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )),
    }
}

/// Bind-mounts the namespace of `ns` onto the existing file `path`.
pub(crate) fn bind(ns: &Namespace, path: &Path) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    let source = format!("/proc/self/fd/{}", ns.as_fd().as_raw_fd());
    mount(
        Some(source.as_str()),
        path,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| match errno {
        Errno::EINVAL if ns.kind() == NsKind::Mnt => Error::Io {
            op: "bind-mounting (a mount namespace can only be kept from an older mount namespace, \
                 not from itself or a newer one)",
            kind: NsKind::Mnt,
            path: Some(path.to_path_buf()),
            errno,
        },
        errno => io_error("bind-mounting", path, errno),
    })
}

impl Namespace {
    /// Keeps the namespace alive at `path` with a bind mount, as `ip netns
    /// add` and container runtimes do: it then lives on after every process
    /// and handle is gone, until [`Namespace::unpersist`]. The file is
    /// created if it does not exist; its directory is not, and must exist
    /// (`std::fs::create_dir_all` first).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] without `CAP_SYS_ADMIN`; [`Error::Io`] if
    /// the file cannot be created or the bind mount fails (a mount namespace
    /// cannot be kept in itself or in a newer mount namespace: `EINVAL`).
    pub fn persist(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let created = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(io_error(
                    "creating",
                    path,
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                ))
            }
        };
        bind(self, path).inspect_err(|_| {
            if created {
                let _ = std::fs::remove_file(path);
            }
        })
    }

    /// Undoes [`persist`](Self::persist): unmounts the namespace at `path`
    /// and removes the file.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `path` does not exist;
    /// [`Error::PermissionDenied`] without `CAP_SYS_ADMIN`.
    pub fn unpersist(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) => {} // EINVAL: not a mount point (any more)
            Err(Errno::ENOENT) => {
                return Err(Error::NotFound {
                    kind: NsKind::Net,
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io_error("unmounting", path, e)),
        }
        std::fs::remove_file(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                kind: NsKind::Net,
                path: path.to_path_buf(),
            },
            _ => io_error(
                "removing",
                path,
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            ),
        })
    }
}
