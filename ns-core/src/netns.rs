//! Named network namespaces, compatible with iproute2's `ip netns`.
//!
//! What `ip netns add NAME` made, [`Namespace::named`] and [`netns::open`]
//! open; what [`netns::add`] makes, `ip netns exec NAME ...` uses. Like
//! iproute2, [`add`] keeps the namespaces as bind mounts under `/run/netns`
//! and makes that directory a shared mount, so that the bind mounts reach
//! every mount namespace that shares it.
//!
//! ```
//! use nsguard::{netns, NsSet};
//!
//! # if !nix::unistd::geteuid().is_root() { return Ok(()); }
//! # struct Delete(String); // removes the name also if the example fails
//! # impl Drop for Delete { fn drop(&mut self) { let _ = nsguard::netns::delete(&self.0); } }
//! let name = format!("nsguard-doc-{}", std::process::id());
//! # let _delete = Delete(name.clone());
//! let made = netns::add(&name)?; // as `ip netns add NAME`
//! assert!(netns::list()?.contains(&name));
//! // `ip netns exec NAME ip link` would run inside; so does this:
//! NsSet::from(netns::open(&name)?).run(|| { /* only `lo` here */ })?;
//! netns::delete(&name)?; // as `ip netns delete NAME`
//! assert!(!netns::list()?.contains(&name));
//! # Ok::<(), nsguard::Error>(())
//! ```
//!
//! [`netns::open`]: open
//! [`netns::add`]: add

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};

use crate::errno::Errno;
use crate::error::{fix, Error, Result};
use crate::executor::wait_until_left;
use crate::handle::namespace::{validate_name, Namespace, NETNS_DIRS};
use crate::handle::reentry::in_initial_user_ns;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds};
use crate::thread::census::tasks;
use crate::thread::owners::role_of;

/// The directory `ip netns` keeps named network namespaces in.
pub const RUN_DIR: &str = NETNS_DIRS[0];

fn path_of(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    Ok(Path::new(RUN_DIR).join(name))
}

/// The error of a failed step on `path`: the file a namespace of `kind` is
/// (to be) kept at, or, with no kind, a directory (`/run/netns`), which is
/// no namespace itself.
fn io_error(op: &'static str, kind: Option<NsKind>, path: &Path, errno: Errno) -> Error {
    match errno {
        Errno::EPERM | Errno::EACCES => Error::PermissionDenied {
            op,
            kind,
            path: Some(path.to_path_buf()),
            needs: "CAP_SYS_ADMIN over the mount namespace, and write access to the directory",
            errno,
            fix: if in_initial_user_ns() {
                fix::MOUNT
            } else {
                fix::MOUNT_IN_USER_NS
            },
        },
        errno => Error::Io {
            op,
            kind,
            path: Some(path.to_path_buf()),
            errno,
        },
    }
}

/// The errno of a failed file operation (`EIO` should one have none).
fn fs_errno(err: &std::io::Error) -> Errno {
    Errno::of_io(err).unwrap_or(Errno::EIO)
}

/// `mount(2)` with nsguard's errno.
fn mount(source: Option<&Path>, target: &Path, flags: MsFlags) -> std::result::Result<(), Errno> {
    nix::mount::mount(source, target, Some("none"), flags, None::<&str>).map_err(Errno::from_nix)
}

/// Opens the network namespace called `name`: the same as
/// [`Namespace::named`].
///
/// # Errors
///
/// See [`Namespace::named`].
///
/// # Examples
///
/// ```
/// use nsguard::{netns, Error, NsKind};
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// # struct Delete(String); // removes the name also if the example fails
/// # impl Drop for Delete { fn drop(&mut self) { let _ = nsguard::netns::delete(&self.0); } }
/// let name = format!("nsguard-doc-{}", std::process::id());
/// # let _delete = Delete(name.clone());
/// let made = netns::add(&name)?;
/// let opened = netns::open(&name)?;
/// assert_eq!(opened, made); // the same namespace
/// assert_eq!(opened.kind(), NsKind::Net);
/// netns::delete(&name)?;
/// assert!(matches!(netns::open(&name), Err(Error::NotFound { .. })));
/// # Ok::<(), nsguard::Error>(())
/// ```
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
/// ```
/// use nsguard::{netns, Error};
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// # struct Delete(String); // removes the name also if the example fails
/// # impl Drop for Delete { fn drop(&mut self) { let _ = nsguard::netns::delete(&self.0); } }
/// let name = format!("nsguard-doc-{}", std::process::id());
/// # let _delete = Delete(name.clone());
/// let made = netns::add(&name)?; // `ip netns exec NAME ...` now works
/// assert!(std::path::Path::new(netns::RUN_DIR).join(&name).exists());
/// // A name is made once.
/// assert!(matches!(netns::add(&name), Err(Error::AlreadyExists { .. })));
/// netns::delete(&name)?;
/// # Ok::<(), nsguard::Error>(())
/// ```
pub fn add(name: &str) -> Result<Namespace> {
    let path = path_of(name)?;
    prepare_run_dir()?;
    let set = NsSet::unshare(NsKind::Net)?;
    let ns = set.get(NsKind::Net).ok_or(Error::Create {
        kinds: NsKinds::of(NsKind::Net),
        step: "opening the new network namespace",
        errno: Errno::ENOENT,
    })?;
    create_exclusive(&path)?;
    if let Err(err) = bind(ns, &path) {
        let _ = std::fs::remove_file(&path);
        return Err(err);
    }
    // Nothing may stay behind when the name cannot be handed out: the bind
    // mount would keep the namespace alive with nobody to delete it.
    Namespace::open(&path, NsKind::Net).inspect_err(|_| {
        let _ = unmount_and_remove(&path, NsKind::Net);
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
/// if a worker was still inside after 10 s (it could not leave);
/// [`Error::ThreadsInside`], naming them, if other threads of this process
/// are inside and keep the namespace alive (the name is gone all the same).
///
/// # Examples
///
/// ```
/// use nsguard::{netns, Error};
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// # struct Delete(String); // removes the name also if the example fails
/// # impl Drop for Delete { fn drop(&mut self) { let _ = nsguard::netns::delete(&self.0); } }
/// let name = format!("nsguard-doc-{}", std::process::id());
/// # let _delete = Delete(name.clone());
/// netns::add(&name)?;
/// netns::delete(&name)?;
/// assert!(!std::path::Path::new(netns::RUN_DIR).join(&name).exists());
/// assert!(matches!(netns::delete(&name), Err(Error::NotFound { .. })));
/// # Ok::<(), nsguard::Error>(())
/// ```
pub fn delete(name: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = path_of(name)?;
    let ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
    Namespace::unpersist(&path, NsKind::Net)?;
    let Some(ino) = ino else {
        return Ok(());
    };
    wait_until_left(ino, std::time::Duration::from_secs(10))?;
    // Threads of this process that keep it alive (started inside by a body
    // or under a guard), other than nsguard's own.
    let threads: Vec<String> = tasks()?
        .into_iter()
        .filter(|t| t.location.get(NsKind::Net) == ino && role_of(t.tid, t.start).is_none())
        .map(|t| format!("{} ({})", t.tid, t.name))
        .collect();
    if threads.is_empty() {
        Ok(())
    } else {
        Err(Error::ThreadsInside { path, threads })
    }
}

/// A named network namespace that is deleted when dropped, also when the
/// code that made it fails or panics: for tests, test harnesses and
/// short-lived tools, which would otherwise leave `/run/netns/NAME` behind.
///
/// [`add`](Scoped::add) makes it as [`netns::add`](add) does; dropping it
/// drops its handle and then [`netns::delete`](delete)s the name, ignoring
/// errors (use [`delete`](Scoped::delete) to see them).
///
/// # Examples
///
/// ```
/// use nsguard::netns;
///
/// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
/// let name = format!("nsguard-doc-scoped-{}", std::process::id());
/// {
///     let blue = netns::Scoped::add(&name)?;
///     assert!(netns::list()?.contains(&name));
///     blue.set()?.run(|| { /* inside /run/netns/<name> */ })?;
/// } // deleted here
/// assert!(!netns::list()?.contains(&name));
/// # Ok::<(), nsguard::Error>(())
/// ```
#[derive(Debug)]
pub struct Scoped {
    name: String,
    /// `None` once deleted.
    ns: Option<Namespace>,
}

impl Scoped {
    /// Makes the network namespace `name`, as [`netns::add`](add) does.
    ///
    /// # Errors
    ///
    /// Those of [`netns::add`](add).
    pub fn add(name: &str) -> Result<Scoped> {
        let ns = add(name)?;
        Ok(Scoped {
            name: name.to_owned(),
            ns: Some(ns),
        })
    }

    /// Its name under `/run/netns`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle to it.
    pub fn namespace(&self) -> Option<&Namespace> {
        self.ns.as_ref()
    }

    /// A set of it alone, with a new handle: to [`run`](NsSet::run) in it,
    /// [`enter`](NsSet::enter) it, or spawn processes into it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the handle cannot be duplicated.
    pub fn set(&self) -> Result<NsSet> {
        self.ns.iter().map(Namespace::try_clone).collect()
    }

    /// Deletes it now, and says whether that worked: drops its handle,
    /// then [`netns::delete`](delete)s the name.
    ///
    /// # Errors
    ///
    /// Those of [`netns::delete`](delete).
    pub fn delete(mut self) -> Result<()> {
        self.ns = None;
        delete(&self.name)
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        if self.ns.take().is_some() {
            let _ = delete(&self.name);
        }
    }
}

/// The names in `/run/netns`, sorted, as `ip netns list` shows them (an
/// empty list if the directory does not exist).
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be read.
///
/// # Examples
///
/// ```
/// for name in nsguard::netns::list()? {
///     println!("{name}"); // as `ip netns list` shows them
/// }
/// # Ok::<(), nsguard::Error>(())
/// ```
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(RUN_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", None, Path::new(RUN_DIR), fs_errno(&e))),
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
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating", None, dir, fs_errno(&e)))?;
    let make_shared = || mount(None, dir, MsFlags::MS_SHARED | MsFlags::MS_REC);
    match make_shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet.
        Err(Errno::EINVAL) => {
            mount(Some(dir), dir, MsFlags::MS_BIND | MsFlags::MS_REC)
                .map_err(|e| io_error("bind-mounting", None, dir, e))?;
            make_shared().map_err(|e| io_error("making shared", None, dir, e))
        }
        Err(e) => Err(io_error("making shared", None, dir, e)),
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
        Err(e) => Err(io_error("creating", Some(NsKind::Net), path, fs_errno(&e))),
    }
}

/// Bind-mounts the namespace of `ns` onto the existing file `path`.
pub(crate) fn bind(ns: &Namespace, path: &Path) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    let source = format!("/proc/self/fd/{}", ns.as_fd().as_raw_fd());
    mount(Some(Path::new(&source)), path, MsFlags::MS_BIND).map_err(|errno| match errno {
        Errno::EINVAL if ns.kind() == NsKind::Mnt => Error::Io {
            op: "bind-mounting (a mount namespace can only be kept from an older mount namespace, \
                 not from itself or a newer one)",
            kind: Some(NsKind::Mnt),
            path: Some(path.to_path_buf()),
            errno,
        },
        errno => io_error("bind-mounting", Some(ns.kind()), path, errno),
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
    /// Each names this namespace's kind and `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Namespace, NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("uts");
    /// let created = NsSet::unshare(NsKind::Uts)?;
    /// let uts = created.get(NsKind::Uts).unwrap();
    /// uts.persist(&path)?;
    /// let id = uts.id();
    /// drop(created); // the bind mount keeps the namespace alive
    /// assert_eq!(Namespace::open(&path, NsKind::Uts)?.id(), id);
    /// Namespace::unpersist(&path, NsKind::Uts)?;
    /// assert!(!path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn persist(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let created = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io_error("creating", Some(self.kind()), path, fs_errno(&e))),
        };
        bind(self, path).inspect_err(|_| {
            if created {
                let _ = std::fs::remove_file(path);
            }
        })
    }

    /// Undoes [`persist`](Self::persist): unmounts the namespace of `kind`
    /// kept at `path`, and removes the file.
    ///
    /// An associated function, not a method like `persist`: what was kept
    /// is usually removed later, often by another program run (as `ip netns
    /// delete` does), which holds no handle to it. It takes the kind, like
    /// [`Namespace::open`], and checks that `path` really is a namespace of
    /// that kind before it unmounts anything: a wrong path is refused, never
    /// unmounted. A file whose bind mount is already gone (an empty regular
    /// file, as `persist` creates) is only removed.
    ///
    /// # Errors
    ///
    /// The errors of [`Namespace::open`] for `path` ([`Error::NotFound`] if
    /// it does not exist, [`Error::NotANamespace`], [`Error::WrongKind`]);
    /// [`Error::PermissionDenied`] without `CAP_SYS_ADMIN`; [`Error::Io`] if
    /// unmounting or removing fails otherwise.
    pub fn unpersist(path: impl AsRef<Path>, kind: NsKind) -> Result<()> {
        let path = path.as_ref();
        let mounted = match Namespace::open(path, kind) {
            Ok(_) => true,
            Err(Error::NotANamespace { .. }) if is_empty_file(path) => false,
            Err(err) => return Err(err),
        };
        unmount(path, kind, mounted)?;
        remove(path, kind)
    }
}

/// Unmounts what is kept at `path` and removes the file, without checking
/// what it is: for paths nsguard itself has just made.
fn unmount_and_remove(path: &Path, kind: NsKind) -> Result<()> {
    unmount(path, kind, false)?;
    remove(path, kind)
}

/// Unmounts what is kept at `path`. `mounted`: `path` is a namespace, so it
/// must be a mount point for there to be anything to unmount; else a path
/// that is no mount point (any more) is fine.
fn unmount(path: &Path, kind: NsKind, mounted: bool) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH).map_err(Errno::from_nix) {
        Ok(()) => {}
        // A namespace that is not a mount point: the kernel's own link
        // under /proc, or a namespace reached through another mount.
        Err(Errno::EINVAL) if mounted => {
            return Err(Error::NotPersisted {
                kind,
                path: path.to_path_buf(),
            })
        }
        Err(Errno::EINVAL) => {} // not a mount point (any more)
        Err(errno @ (Errno::ENOENT | Errno::ENOTDIR)) => {
            return Err(Error::NotFound {
                kind,
                path: path.to_path_buf(),
                errno,
            })
        }
        Err(e) => return Err(io_error("unmounting", Some(kind), path, e)),
    }
    Ok(())
}

/// Removes the file a namespace was kept at.
fn remove(path: &Path, kind: NsKind) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| match fs_errno(&e) {
        errno @ (Errno::ENOENT | Errno::ENOTDIR) => Error::NotFound {
            kind,
            path: path.to_path_buf(),
            errno,
        },
        errno => io_error("removing", Some(kind), path, errno),
    })
}

/// Whether `path` is an empty regular file (not following a link).
fn is_empty_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}
