//! nsguard in one minute: make a private network namespace, run a function
//! inside it with `#[in_namespace]`, and list the interfaces seen inside
//! next to the host's.
//!
//! ```text
//! cargo run --example quickstart              # as root
//! unshare -Urn cargo run --example quickstart # or in a user namespace of its own
//! ```
//!
//! Nothing is mounted or left behind: the namespace lives as long as its
//! handle, and dies with the process, also on Ctrl-C.

mod common;

use std::process::ExitCode;

use nsguard::{in_namespace, Namespace, NsKind, NsSet};

/// Runs on a worker thread inside `netns`; the caller's thread never moves.
#[in_namespace(net = netns)]
fn interfaces_in(netns: &Namespace) -> std::io::Result<Vec<String>> {
    Ok(common::interfaces()?)
}

fn main() -> ExitCode {
    common::main("quickstart", || {
        // A new network namespace, created without switching this thread.
        let private = NsSet::unshare(NsKind::Net)?;
        let netns = private.get(NsKind::Net).ok_or("no netns was created")?;
        let host = Namespace::current(NsKind::Net)?;
        println!("this thread is in {}; created {}", host.id(), netns.id());

        let inside = interfaces_in(netns)?;
        let outside = common::interfaces()?;
        assert_eq!(
            Namespace::current(NsKind::Net)?,
            host,
            "the caller never moved"
        );
        println!("ran interfaces_in() on a worker inside {}\n", netns.id());
        common::side_by_side(
            &format!("outside {}", host.id()),
            &outside,
            &format!("inside {}", netns.id()),
            &inside,
        );
        Ok(())
    })
}
