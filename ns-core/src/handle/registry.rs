//! Which namespaces the program holds a handle to.
//!
//! Every [`Namespace`](crate::Namespace) counts here while it lives. When
//! the last handle to a namespace goes, the hook that the executor
//! installs ([`set_last_handle_hook`]) sends idle workers inside it home,
//! so that no nsguard thread keeps a namespace alive that the program has
//! let go of (the kernel frees a namespace, and the devices in it, only
//! once no process, thread, fd or mount refers to it).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Live handles per namespace inode number (unique within nsfs).
static HANDLES: Mutex<BTreeMap<u64, u32>> = Mutex::new(BTreeMap::new());

/// Told the inode number of a namespace whose last handle was dropped.
static ON_LAST_HANDLE: OnceLock<fn(u64)> = OnceLock::new();

fn handles() -> MutexGuard<'static, BTreeMap<u64, u32>> {
    HANDLES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the function told of every namespace whose last handle the
/// program drops. The first one installed stays.
pub(crate) fn set_last_handle_hook(hook: fn(u64)) {
    let _ = ON_LAST_HANDLE.set(hook);
}

/// One handle's share in the count of its namespace.
pub(crate) struct Registration(u64);

impl Registration {
    pub(crate) fn new(ino: u64) -> Registration {
        *handles().entry(ino).or_insert(0) += 1;
        Registration(ino)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let last = {
            let mut handles = handles();
            match handles.get_mut(&self.0) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    handles.remove(&self.0);
                    true
                }
            }
        };
        if last {
            if let Some(hook) = ON_LAST_HANDLE.get() {
                hook(self.0);
            }
        }
    }
}

/// Whether the program holds a handle to the namespace with inode `ino`.
pub(crate) fn is_held(ino: u64) -> bool {
    handles().contains_key(&ino)
}
