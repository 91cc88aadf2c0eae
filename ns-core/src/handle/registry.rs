//! Which namespaces the program holds a handle to.
//!
//! Every [`Namespace`](crate::Namespace) counts here while it lives. When
//! the last handle to a namespace goes, the hook that the executor
//! installs ([`set_last_handle_hook`]) sends idle workers inside it home,
//! so that no nsguard thread keeps a namespace alive that the program has
//! let go of (the kernel frees a namespace, and the devices in it, only
//! once no process, thread, fd or mount refers to it).
//!
//! The counts and the hook are kept per fork generation: a forked child
//! starts with none (the handles it inherited are its parent's count, and
//! the lock of that count may have been held by a thread the child does
//! not have), so no child ever waits for a lock here.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::sys::fork_local::{self, ForkLocal};

/// Live handles per namespace inode number (unique within nsfs), made in
/// this fork generation.
static HANDLES: ForkLocal<Mutex<BTreeMap<u64, u32>>> = ForkLocal::new();

/// Told the inode number of a namespace whose last handle was dropped.
static ON_LAST_HANDLE: ForkLocal<fn(u64)> = ForkLocal::new();

fn handles() -> MutexGuard<'static, BTreeMap<u64, u32>> {
    let made = HANDLES.get_or_try_make(|| Ok::<_, std::convert::Infallible>(Mutex::default()));
    let Ok(handles) = made;
    handles.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the function told of every namespace whose last handle the
/// program drops. The first one installed in a fork generation stays.
pub(crate) fn set_last_handle_hook(hook: fn(u64)) {
    let _ = ON_LAST_HANDLE.get_or_try_make(|| Ok::<_, std::convert::Infallible>(hook));
}

/// One handle's share in the count of its namespace.
pub(crate) struct Registration {
    ino: u64,
    /// The fork generation it was counted in: dropped in a forked child,
    /// it counts for nothing there.
    generation: u64,
}

impl Registration {
    pub(crate) fn new(ino: u64) -> Registration {
        let mut handles = handles();
        *handles.entry(ino).or_insert(0) += 1;
        Registration {
            ino,
            generation: fork_local::generation(),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.generation != fork_local::generation() {
            return;
        }
        let last = {
            let mut handles = handles();
            match handles.get_mut(&self.ino) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    handles.remove(&self.ino);
                    true
                }
            }
        };
        if last {
            if let Some(hook) = ON_LAST_HANDLE.get() {
                hook(self.ino);
            }
        }
    }
}

/// Whether the program holds a handle to the namespace with inode `ino`
/// (made in this fork generation).
pub(crate) fn is_held(ino: u64) -> bool {
    handles().contains_key(&ino)
}
