//! A cgroup that caps this process's threads ([`PidsLimit`]): a real
//! `EAGAIN` from `clone(2)`, where a test needs thread creation to fail.

use std::path::PathBuf;

use crate::names::unique_name;

/// The pids controller (cgroup v1 or v2) of this machine, if any: under
/// v2, only where the root passes it on to child cgroups
/// (`cgroup.subtree_control`), or theirs have no `pids.max`.
fn pids_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            p.join("cgroup.procs").exists()
                && (p.ends_with("pids")
                    || std::fs::read_to_string(p.join("cgroup.subtree_control"))
                        .is_ok_and(|on| on.split_whitespace().any(|c| c == "pids")))
        })
}

/// This process in a cgroup of its own whose `pids.max` caps its threads:
/// a real `EAGAIN` from `clone(2)`. Moved back and removed on drop.
#[derive(Debug)]
pub struct PidsLimit {
    dir: PathBuf,
    root: PathBuf,
}

impl PidsLimit {
    /// Moves this process into a new cgroup, not capped yet; `None` (with a
    /// printed reason) where no pids controller can be used.
    ///
    /// # Panics
    ///
    /// If the cgroup was made but this process cannot be moved into it.
    pub fn new() -> Option<PidsLimit> {
        let Some(root) = pids_root() else {
            println!("skipped: no cgroup pids controller on this machine");
            return None;
        };
        let dir = root.join(unique_name("nsguard-test"));
        if let Err(e) = std::fs::create_dir(&dir) {
            println!(
                "skipped: cannot create a cgroup under {}: {e}",
                root.display()
            );
            return None;
        }
        let limit = PidsLimit { dir, root };
        std::fs::write(
            limit.dir.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .expect("move this process into the test cgroup");
        Some(limit)
    }

    /// Caps the cgroup at its current number of tasks plus `extra`.
    pub fn allow_more(&self, extra: usize) {
        let now: usize = std::fs::read_to_string(self.dir.join("pids.current"))
            .expect("pids.current")
            .trim()
            .parse()
            .expect("a number");
        std::fs::write(self.dir.join("pids.max"), (now + extra).to_string()).expect("pids.max");
    }

    /// Lifts the cap.
    pub fn lift(&self) {
        std::fs::write(self.dir.join("pids.max"), "max").expect("pids.max");
    }
}

impl Drop for PidsLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("pids.max"), "max");
        let _ = std::fs::write(
            self.root.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}
