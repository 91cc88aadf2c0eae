//! Which namespaces the program holds a handle to.
//!
//! Every [`Namespace`](crate::Namespace) counts here while it lives. When
//! the last handle to a namespace goes, idle workers inside it are sent
//! home, so that no nsguard thread keeps a namespace alive that the
//! program has let go of (the kernel frees a namespace, and the devices in
//! it, only once no process, thread, fd or mount refers to it).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Live handles per namespace inode number (unique within nsfs).
static LIVE: Mutex<BTreeMap<u64, u32>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<u64, u32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// One handle's share in the count of its namespace.
pub(crate) struct LiveToken(u64);

impl LiveToken {
    pub(crate) fn new(ino: u64) -> LiveToken {
        *live().entry(ino).or_insert(0) += 1;
        LiveToken(ino)
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        let last = {
            let mut live = live();
            match live.get_mut(&self.0) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    live.remove(&self.0);
                    true
                }
            }
        };
        if last {
            crate::executor::on_last_handle_dropped(self.0);
        }
    }
}

/// Whether the program holds a handle to the namespace with inode `ino`.
pub(crate) fn is_held(ino: u64) -> bool {
    live().contains_key(&ino)
}
