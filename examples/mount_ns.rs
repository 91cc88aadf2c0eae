//! A private mount namespace: a tmpfs mounted inside is seen by code that
//! runs there, and never by the host.
//!
//! ```text
//! cargo run --example mount_ns
//! ```

mod common;

use std::process::ExitCode;

use nix::mount::{mount, umount, MsFlags};
use nsguard::{NsKind, NsSet};

fn main() -> ExitCode {
    common::main("mount_ns", || {
        // New mount namespace; its mounts are made private first, so nothing
        // mounted inside propagates back to the host.
        let private = NsSet::unshare(NsKind::Mnt)?;
        // An existing directory: nothing is created on the host, so nothing
        // is left behind whatever happens.
        let dir = std::path::Path::new("/mnt");
        let file = dir.join("nsguard-mount-ns-example.txt");
        println!(
            "mount point (exists on the host and inside): {}",
            dir.display()
        );

        private.run(|| -> std::io::Result<()> {
            mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )?;
            std::fs::write(&file, "written inside the mount namespace\n")
        })??;

        let inside = private.run(|| std::fs::read_to_string(&file))??;
        let outside = std::fs::read_to_string(&file).unwrap_or_else(|e| format!("<{e}>"));
        println!("inside : {}", inside.trim());
        println!("outside: {}", outside.trim());
        if outside == inside {
            return Err("the host sees the tmpfs".into());
        }
        // Unmount explicitly; the mount would also vanish with the namespace.
        private.run(|| umount(dir))??;
        println!("unmounted; the namespace dies with its last handle");
        Ok(())
    })
}
