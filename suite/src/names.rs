//! Names for what tests create in places the whole machine shares
//! (`/run/netns`, cgroups, links), so that tests running at once never
//! collide.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A name unique to this process and call: `{prefix}-{pid}-{n}`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
